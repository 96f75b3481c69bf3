"""Strategies with their setups and confirmation templates.

A strategy is `strategy_id, name, description, color_tag, account_id, copy_group_id,
risk_rules, exit_rules, optimal_conditions, setups[]`; each setup is `setup_id, name,
description, sort_order, confirmations[]`, each confirmation `confirmation_id, name,
description, sort_order`. The list endpoint returns `setup_count` instead of the tree.
"""

from __future__ import annotations

from typing import Any

from .._pipeline import Ctx, Result
from .._validate import Invalid, check_body, integer, obj, string
from .common import color, listed, owned, page, path_int, save, unique, within_cap

__all__ = [
    "create_strategy",
    "delete_strategy",
    "get_setups",
    "get_strategy",
    "list_strategies",
    "update_strategy",
]

STRATEGY_CAP = {"free": 3, "pro": 100}

_FIELDS = {
    "name": string(1, 255, nullable=False),
    "description": string(),
    "color_tag": color,
    "account_id": integer(1, nullable=True),
    "copy_group_id": integer(1, nullable=True),
    "risk_rules": obj(),
    "exit_rules": obj(),
    "optimal_conditions": obj(),
    "setups": lambda v: v,
}
#: What a setup and a confirmation share: a name, a description and a place in the list.
_ENTRY = {
    "name": string(1, 255, nullable=False),
    "description": string(),
    "sort_order": integer(nullable=True),
}
_SETUP = {"setup_id": integer(1), **_ENTRY, "confirmations": lambda v: v}
_CONFIRMATION = {"confirmation_id": integer(1), **_ENTRY}


def _items(value: Any, name: str, cap: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid({name: "must be an array"})
    if len(value) > cap:
        raise Invalid({name: f"at most {cap} entries"})
    return value


def _nested(value: Any, spec: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return check_body(value, spec, required=("name",))
    except Invalid as exc:
        fields = exc.details.get("fields", {})
        raise Invalid({f"{where}.{k}": v for k, v in fields.items()}) from None


#: The two ways to scope a strategy: (field, document kind, the other field, in words).
_SCOPES = (
    ("account_id", "account", "copy_group_id", "accounts"),
    ("copy_group_id", "copy_group", "account_id", "copy groups"),
)


def _scope(ctx: Ctx, body: dict[str, Any], doc: dict[str, Any]) -> None:
    """Validate `account_id` / `copy_group_id`; setting one clears the other."""
    if body.get("account_id") is not None and body.get("copy_group_id") is not None:
        raise Invalid({"account_id": "cannot be combined with copy_group_id"})
    for name, kind, other, plural in _SCOPES:
        if body.get(name) is not None:
            if ctx.store.get(kind, body[name], ctx.uid) is None:
                raise Invalid({name: f"is not one of your {plural}"})
            doc[name], doc[other] = body[name], None
        elif name in body:
            doc[name] = None


def _confirmations(
    ctx: Ctx, raw: Any, existing: list[dict[str, Any]], where: str
) -> list[dict[str, Any]]:
    """Diff-upsert: known ids are updated in place, new entries inserted, the rest dropped."""
    by_id = {c["confirmation_id"]: c for c in existing}
    out, unknown = [], []
    for j, item in enumerate(_items(raw, f"{where}.confirmations", 100)):
        fields = _nested(item, _CONFIRMATION, f"{where}.confirmations[{j}]")
        cid = fields.get("confirmation_id")
        if cid is not None and cid not in by_id:
            unknown.append(cid)
            continue
        out.append(
            {
                "confirmation_id": cid or ctx.store.next_id("confirmation"),
                "name": fields["name"],
                "description": fields.get("description"),
                "sort_order": j if fields.get("sort_order") is None else fields["sort_order"],
            }
        )
    if unknown:
        raise Invalid(
            {f"{where}.confirmations": "contains confirmation ids of another setup"},
            unknown_confirmation_ids=unknown,
        )
    return out


def _setups(ctx: Ctx, raw: Any, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["setup_id"]: s for s in existing}
    out, unknown = [], []
    for i, item in enumerate(_items(raw, "setups", 50)):
        fields = _nested(item, _SETUP, f"setups[{i}]")
        sid = fields.get("setup_id")
        if sid is not None and sid not in by_id:
            unknown.append(sid)
            continue
        old = by_id.get(sid) if sid else None
        confirmations = (old or {}).get("confirmations", [])
        if "confirmations" in fields:
            confirmations = _confirmations(
                ctx, fields["confirmations"], confirmations, f"setups[{i}]"
            )
        out.append(
            {
                "setup_id": sid or ctx.store.next_id("setup"),
                "name": fields["name"],
                "description": fields.get("description"),
                "sort_order": i if fields.get("sort_order") is None else fields["sort_order"],
                "confirmations": confirmations,
            }
        )
    if unknown:
        raise Invalid(
            {"setups": "contains setup ids of another strategy"}, unknown_setup_ids=unknown
        )
    return out


def _unlink(ctx: Ctx, doc: dict[str, Any], kept: list[dict[str, Any]] | None) -> int:
    """Null trade references to a deleted strategy (kept=None) or to its dropped setups and
    confirmations; returns how many trades lost their strategy."""
    setups = {s["setup_id"] for s in kept or []}
    confirmations = {c["confirmation_id"] for s in kept or [] for c in s["confirmations"]}
    owned_confirmations = {c["confirmation_id"] for s in doc["setups"] for c in s["confirmations"]}
    unlinked = 0
    for trade in ctx.store.all("trade", ctx.uid):
        changed = dict(trade)
        if trade.get("strategy_id") == doc["strategy_id"]:
            if kept is None:
                changed["strategy_id"] = changed["setup_id"] = None
                unlinked += 1
            elif trade.get("setup_id") is not None and trade["setup_id"] not in setups:
                changed["setup_id"] = None
        answers = trade.get("confirmations", [])
        keep = [
            a
            for a in answers
            if a["confirmation_id"] not in owned_confirmations
            or a["confirmation_id"] in confirmations
        ]
        if len(keep) != len(answers):
            changed["confirmations"] = keep
        if changed != trade:
            ctx.store.put("trade", trade["trade_id"], ctx.uid, changed)
    return unlinked


async def list_strategies(ctx: Ctx) -> Result:
    rows = sorted(ctx.store.all("strategy", ctx.uid), key=lambda s: s["strategy_id"])
    for name in ("account_id", "copy_group_id"):
        if ctx.params.get(name):
            rows = [s for s in rows if str(s.get(name)) == ctx.params[name]]
    chunk, meta = page(ctx, rows)
    out = [
        {k: v for k, v in s.items() if k != "setups"} | {"setup_count": len(s["setups"])}
        for s in chunk
    ]
    return Result(data={"strategies": out, **meta})


async def get_strategy(ctx: Ctx) -> Result:
    return Result(data={"strategy": owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")})


async def get_setups(ctx: Ctx) -> Result:
    doc = owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")
    return listed(ctx, "setups", doc["setups"])


async def create_strategy(ctx: Ctx) -> Result:
    body = check_body(ctx.body, _FIELDS, required=("name",))
    unique(ctx, "strategy", "name", body["name"])
    within_cap(ctx, STRATEGY_CAP, len(ctx.store.all("strategy", ctx.uid)), "strategies")
    doc: dict[str, Any] = {
        "strategy_id": ctx.store.next_id("strategy"),
        "name": body["name"],
        "description": body.get("description"),
        "color_tag": body.get("color_tag") or "#1d4ed8",
        "account_id": None,
        "copy_group_id": None,
        "risk_rules": body.get("risk_rules"),
        "exit_rules": body.get("exit_rules"),
        "optimal_conditions": body.get("optimal_conditions"),
        "setups": [],
    }
    _scope(ctx, body, doc)
    if body.get("setups") is not None:
        for i, item in enumerate(_items(body["setups"], "setups", 50)):
            if isinstance(item, dict) and "setup_id" in item:
                raise Invalid({f"setups[{i}].setup_id": "is not accepted on create"})
        doc["setups"] = _setups(ctx, body["setups"], [])
    ctx.store.put("strategy", doc["strategy_id"], ctx.uid, doc)
    return Result(201, {"strategy": doc})


async def update_strategy(ctx: Ctx) -> Result:
    doc = owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")
    body = check_body(ctx.body, _FIELDS)
    if not body:
        raise Invalid({"body": "has no fields to change"})
    if "name" in body:
        unique(ctx, "strategy", "name", body["name"], skip=doc["strategy_id"])
    updated = dict(doc)
    for name in ("name", "description", "risk_rules", "exit_rules", "optimal_conditions"):
        if name in body:
            updated[name] = body[name]
    if "color_tag" in body:
        updated["color_tag"] = body["color_tag"]
    _scope(ctx, body, updated)
    if "setups" in body:
        updated["setups"] = _setups(ctx, body["setups"] or [], doc["setups"])
        _unlink(ctx, doc, updated["setups"])
    return Result(data={"strategy": save(ctx, "strategy", updated)})


async def delete_strategy(ctx: Ctx) -> Result:
    doc = owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")
    unlinked = _unlink(ctx, doc, None)
    ctx.store.delete("strategy", doc["strategy_id"])
    return Result(204, headers={"X-Trades-Unlinked": str(unlinked)})
