"""Protocols (sections and items) and their recorded responses.

A protocol is `protocol_id, type, name, description, is_active, is_default, created_at,
sections[]`; a section `section_id, name, sort_order, items[]`; an item `item_id,
item_type, label, options, is_required, sort_order`. A response is `response_id,
protocol_id, trade_number, status, completion_pct, completed_at, created_at` plus, when read
singly, `answers[]` of `item_id, item_type, section_id, value`.
"""

from __future__ import annotations

import re
from typing import Any

from .. import _trades as T
from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, boolean, check_body, enum, integer, string
from .common import flag, iso, owned, page, param, path_int, save, within_cap

__all__ = [
    "create_protocol",
    "delete_protocol",
    "delete_response",
    "get_protocol",
    "get_response",
    "list_protocols",
    "list_responses",
    "patch_response",
    "record_response",
    "update_protocol",
]

PROTOCOL_TYPES = ("pre_market", "pre_trade", "in_trade", "post_trade", "end_of_day", "weekly")
ITEM_TYPES = ("checkbox", "yes_no_na", "rating", "text", "select", "number")
PROTOCOL_CAP = {"free": 1, "pro": 10}  # per protocol type


async def list_protocols(ctx: Ctx) -> Result:
    rows = ctx.store.all("protocol", ctx.uid)
    kinds = PROTOCOL_TYPES
    if ctx.params.get("type"):
        if ctx.params["type"] not in kinds:
            raise Invalid({"type": "is not a protocol type"}, allowed=list(kinds))
        rows = [p for p in rows if p["type"] == ctx.params["type"]]
    if flag(ctx, "active_only"):
        rows = [p for p in rows if p["is_active"]]
    chunk, meta = page(ctx, sorted(rows, key=lambda p: p["protocol_id"]))
    return Result(
        data={
            "protocols": [
                {k: v for k, v in p.items() if k != "sections"}
                | {
                    "section_count": len(p["sections"]),
                    "item_count": sum(len(s["items"]) for s in p["sections"]),
                }
                for p in chunk
            ],
            **meta,
        }
    )


async def get_protocol(ctx: Ctx) -> Result:
    return Result(data={"protocol": owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")})


def _item(raw: Any, where: str, problems: dict[str, str]) -> dict[str, Any] | None:
    try:
        item = check_body(
            raw,
            {
                "item_type": enum(ITEM_TYPES, nullable=False),
                "label": string(1, 200, nullable=False),
                "options": lambda v: v,
                "is_required": boolean(),
                "required": boolean(),
            },
            required=("item_type", "label"),
        )
    except Invalid as exc:
        for k, v in exc.details.get("fields", {}).items():
            problems[f"{where}.{k}"] = v
        return None
    options = item.get("options")
    if item["item_type"] == "select":
        if (
            not isinstance(options, list)
            or not 2 <= len(options) <= 10
            or not all(isinstance(o, str) and 0 < len(o.strip()) <= 80 for o in options)
        ):
            problems[f"{where}.options"] = "select needs 2-10 non-empty options of up to 80 chars"
            return None
    elif options is not None:
        problems[f"{where}.options"] = "only select items take options"
        return None
    return item


def _checked_sections(sections: Any) -> list[tuple[str, list[Any]]]:
    """A new protocol's sections and items, checked; every problem named at once."""
    if not isinstance(sections, list) or not 1 <= len(sections) <= 8:
        raise Invalid({"sections": "must be an array of 1-8 sections"})
    problems: dict[str, str] = {}
    built = []
    for i, raw in enumerate(sections):
        try:
            section = check_body(
                raw,
                {"name": string(1, 100, nullable=False), "items": lambda v: v},
                required=("name", "items"),
            )
        except Invalid as exc:
            for k, v in exc.details.get("fields", {}).items():
                problems[f"sections[{i}].{k}"] = v
            continue
        items = section["items"]
        if not isinstance(items, list) or not 1 <= len(items) <= 15:
            problems[f"sections[{i}].items"] = "must be an array of 1-15 items"
            continue
        checked = [_item(it, f"sections[{i}].items[{j}]", problems) for j, it in enumerate(items)]
        built.append((section["name"], checked))
    if problems:
        raise Invalid(problems)
    return built


async def create_protocol(ctx: Ctx) -> Result:
    body = check_body(
        ctx.body,
        {
            "type": enum(PROTOCOL_TYPES, nullable=False),
            "name": string(1, 100, nullable=False),
            "description": string(0, 500),
            "set_as_default": boolean(),
            "sections": lambda v: v,
        },
        required=("type", "name", "sections"),
    )
    built = _checked_sections(body["sections"])
    same_type = [p for p in ctx.store.all("protocol", ctx.uid) if p["type"] == body["type"]]
    within_cap(ctx, PROTOCOL_CAP, len(same_type), f"{body['type']} protocol(s)")
    has_default = any(p["is_active"] and p["is_default"] for p in same_type)
    pid = ctx.store.next_id("protocol")
    doc = {
        "protocol_id": pid,
        "type": body["type"],
        "name": body["name"],
        "description": body.get("description"),
        "is_active": True,
        "is_default": bool(body.get("set_as_default")) and not has_default,
        "sections": [
            {
                "section_id": ctx.store.next_id("protocol_section"),
                "name": name,
                "sort_order": i,
                "items": [
                    {
                        "item_id": ctx.store.next_id("protocol_item"),
                        "item_type": it["item_type"],
                        "label": it["label"],
                        "options": it.get("options"),
                        "is_required": bool(it.get("is_required", it.get("required", False))),
                        "sort_order": j,
                    }
                    for j, it in enumerate(items)
                    if it is not None
                ],
            }
            for i, (name, items) in enumerate(built)
        ],
        "created_at": iso(ctx.now),
    }
    ctx.store.put("protocol", pid, ctx.uid, doc)
    return Result(201, {"protocol": doc})


async def update_protocol(ctx: Ctx) -> Result:
    doc = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    body = check_body(
        ctx.body,
        {
            "name": string(1, 100, nullable=False),
            "description": string(0, 500),
            "is_active": boolean(),
            "is_default": boolean(),
        },
    )
    if not body:
        raise Invalid({"body": "has no fields to change"})
    if body.get("is_default"):
        for other in ctx.store.all("protocol", ctx.uid):
            if (
                other["type"] == doc["type"]
                and other["protocol_id"] != doc["protocol_id"]
                and other["is_default"]
            ):
                ctx.store.put(
                    "protocol", other["protocol_id"], ctx.uid, {**other, "is_default": False}
                )
    return Result(data={"protocol": save(ctx, "protocol", {**doc, **body})})


async def delete_protocol(ctx: Ctx) -> Result:
    doc = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    for resp in ctx.store.all("response", ctx.uid):
        if resp["protocol_id"] == doc["protocol_id"]:
            ctx.store.delete("response", resp["response_id"])
    ctx.store.delete("protocol", doc["protocol_id"])
    return Result(204)


def _item_values(
    proto: dict[str, Any], values: Any, completed: bool
) -> tuple[dict[str, Any], float]:
    if not isinstance(values, dict):
        raise Invalid({"item_values": "must be an object of item_id -> value"})
    items = {str(i["item_id"]): i for s in proto["sections"] for i in s["items"]}
    unknown = [k for k in values if k not in items]
    if unknown:
        raise Invalid(
            {"item_values": "contains unknown item ids"},
            unknown_item_ids=[int(k) if k.isdigit() else k for k in unknown],
        )
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        item = items[key]
        kind = item["item_type"]
        text = str(value) if not isinstance(value, bool) else ""
        if kind == "checkbox" and text not in {"1", "0"}:
            errors[key] = 'checkbox takes "1" or "0"'
        elif kind == "yes_no_na" and text not in {"yes", "no", "na"}:
            errors[key] = 'takes "yes", "no" or "na"'
        elif kind == "rating" and not (re.fullmatch(r"[1-5]", text)):
            errors[key] = "rating must be an integer 1-5"
        elif kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", text):
            errors[key] = "must be numeric"
        elif kind == "select" and text not in (item.get("options") or []):
            errors[key] = "must be one of the configured options"
        out[key] = int(text) if kind == "rating" and key not in errors else value
    if errors:
        raise Invalid({"item_values": "has invalid values"}, item_value_errors=errors)
    required = [int(k) for k, i in items.items() if i["is_required"]]
    missing = [k for k in required if str(k) not in out]
    if completed and missing:
        raise Invalid({"item_values": "misses required items"}, missing=missing)
    return out, round(100 * len(out) / len(items), 1) if items else 100.0


def _link_trade(ctx: Ctx, number: Any) -> dict[str, Any] | None:
    if number is None:
        return None
    for trade in ctx.store.all("trade", ctx.uid):
        if trade["trade_number"] == number and not trade.get("archived"):
            return T.source_of(ctx.store, trade)
    raise Invalid({"trade_number": "is not one of your trades"})


def _response_out(ctx: Ctx, resp: dict[str, Any], *, values: bool) -> dict[str, Any]:
    trade = ctx.store.get("trade", resp["trade_id"]) if resp.get("trade_id") else None
    out = {k: v for k, v in resp.items() if k not in {"values", "trade_id"}}
    out["trade_number"] = trade["trade_number"] if trade else None
    if values:
        proto = ctx.store.get("protocol", resp["protocol_id"]) or {"sections": []}
        items = {
            str(i["item_id"]): (s["section_id"], i) for s in proto["sections"] for i in s["items"]
        }
        out["answers"] = [
            {
                "item_id": int(k),
                "item_type": items[k][1]["item_type"],
                "section_id": items[k][0],
                "value": v,
            }
            for k, v in resp["values"].items()
            if k in items
        ]
    return out


async def record_response(ctx: Ctx) -> Result:
    proto = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    body = check_body(
        ctx.body,
        {
            "item_values": lambda v: v,
            "trade_number": integer(1, nullable=True),
            "status": enum(("completed", "draft")),
        },
        required=("item_values",),
    )
    status = body.get("status") or "completed"
    values, pct = _item_values(proto, body["item_values"], status == "completed")
    trade = _link_trade(ctx, body.get("trade_number"))
    rid = ctx.store.next_id("response")
    resp = {
        "response_id": rid,
        "protocol_id": proto["protocol_id"],
        "trade_id": trade["trade_id"] if trade else None,
        "status": status,
        "completion_pct": pct,
        "completed_at": iso(ctx.now) if status == "completed" else None,
        "created_at": iso(ctx.now),
        "values": values,
    }
    ctx.store.put("response", rid, ctx.uid, resp)
    return Result(201, {"response": _response_out(ctx, resp, values=True)})


async def list_responses(ctx: Ctx) -> Result:
    proto = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    rows = [
        r for r in ctx.store.all("response", ctx.uid) if r["protocol_id"] == proto["protocol_id"]
    ]
    status = ctx.params.get("status", "completed")
    if status not in ("completed", "draft", "all"):
        raise Invalid({"status": "is not allowed"}, allowed=["completed", "draft", "all"])
    if status != "all":
        rows = [r for r in rows if r["status"] == status]
    if ctx.params.get("trade_number"):
        number = param(ctx, "trade_number", integer(1))
        trades = [t for t in ctx.store.all("trade", ctx.uid) if t["trade_number"] == number]
        ids = {t["trade_id"] for t in trades} | {
            t["source_trade_id"] for t in trades if t.get("source_trade_id") is not None
        }
        rows = [r for r in rows if r.get("trade_id") is not None and r["trade_id"] in ids]
    start, end, _ = T.date_window(ctx.params, ctx.tz, ctx.now, default_days=None)
    if start is not None or end is not None:
        rows = [
            r
            for r in rows
            if r.get("completed_at")
            and (start is None or r["completed_at"] >= iso(start.timestamp()))
            and (end is None or r["completed_at"] < iso(end.timestamp()))
        ]
    rows.sort(key=lambda r: (r.get("completed_at") or r["created_at"], r["response_id"]))
    rows.reverse()
    rows_page, meta = page(ctx, rows, cap=200)
    return Result(
        data={"responses": [_response_out(ctx, r, values=False) for r in rows_page], **meta}
    )


async def get_response(ctx: Ctx) -> Result:
    proto = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    resp = owned(ctx, "response", path_int(ctx, "rid"), "Response")
    if resp["protocol_id"] != proto["protocol_id"]:
        raise ApiError(404, "not_found", "Response not found.")
    return Result(data={"response": _response_out(ctx, resp, values=True)})


async def patch_response(ctx: Ctx) -> Result:
    proto = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    resp = owned(ctx, "response", path_int(ctx, "rid"), "Response")
    body = check_body(
        ctx.body,
        {
            "item_values": lambda v: v,
            "status": enum(("completed", "draft")),
            "trade_number": integer(1, nullable=True),
        },
    )
    status = body.get("status", resp["status"])
    values, pct = _item_values(
        proto, body.get("item_values", resp["values"]), status == "completed"
    )
    updated = {**resp, "status": status, "values": values, "completion_pct": pct}
    if status == "completed" and not resp.get("completed_at"):
        updated["completed_at"] = iso(ctx.now)
    if "trade_number" in body:
        trade = _link_trade(ctx, body["trade_number"])
        updated["trade_id"] = trade["trade_id"] if trade else None
    ctx.store.put("response", resp["response_id"], ctx.uid, updated)
    return Result(data={"response": _response_out(ctx, updated, values=True)})


async def delete_response(ctx: Ctx) -> Result:
    owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    resp = owned(ctx, "response", path_int(ctx, "rid"), "Response")
    ctx.store.delete("response", resp["response_id"])
    return Result(204)
