"""Protocols (sections and items) and their recorded responses."""

from __future__ import annotations

import re
from typing import Any

from . import _trades as T
from ._http import iso, owned, page, param, path_int, route
from ._pipeline import Ctx, Result
from ._validate import ApiError, Invalid, check_body, enum, integer

__all__: list[str] = []


@route("GET", "/protocols", "read:protocols")
async def list_protocols(ctx: Ctx) -> Result:
    rows = ctx.store.all("protocol", ctx.uid)
    kinds = ("pre_market", "pre_trade", "in_trade", "post_trade", "end_of_day", "weekly")
    if ctx.params.get("type"):
        if ctx.params["type"] not in kinds:
            raise Invalid({"type": "is not a protocol type"}, allowed=list(kinds))
        rows = [p for p in rows if p["type"] == ctx.params["type"]]
    if ctx.params.get("active_only", "").lower() in {"1", "true"}:
        rows = [p for p in rows if p["is_active"]]
    return Result(
        data={
            "protocols": [
                {k: v for k, v in p.items() if k != "sections"}
                | {
                    "section_count": len(p["sections"]),
                    "item_count": sum(len(s["items"]) for s in p["sections"]),
                }
                for p in rows
            ]
        }
    )


@route("GET", "/protocols/{id}", "read:protocols")
async def get_protocol(ctx: Ctx) -> Result:
    return Result(data={"protocol": owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")})


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


@route("POST", "/protocols/{id}/responses", "write:protocols")
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


@route("GET", "/protocols/{id}/responses", "read:protocols")
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
        ids = {t["trade_id"] for t in trades} | {t.get("source_trade_id") for t in trades}
        rows = [r for r in rows if r.get("trade_id") in ids]
    rows_page, meta = page(ctx, rows, cap=200)
    return Result(
        data={"responses": [_response_out(ctx, r, values=False) for r in rows_page], **meta}
    )


@route("GET", "/protocols/{id}/responses/{rid}", "read:protocols")
async def get_response(ctx: Ctx) -> Result:
    proto = owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    resp = owned(ctx, "response", path_int(ctx, "rid"), "Response")
    if resp["protocol_id"] != proto["protocol_id"]:
        raise ApiError(404, "not_found", "Response not found.")
    return Result(data={"response": _response_out(ctx, resp, values=True)})


@route("PATCH", "/protocols/{id}/responses/{rid}", "write:protocols")
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


@route("DELETE", "/protocols/{id}/responses/{rid}", "write:protocols")
async def delete_response(ctx: Ctx) -> Result:
    owned(ctx, "protocol", path_int(ctx, "id"), "Protocol")
    resp = owned(ctx, "response", path_int(ctx, "rid"), "Response")
    ctx.store.delete("response", resp["response_id"])
    return Result(204)
