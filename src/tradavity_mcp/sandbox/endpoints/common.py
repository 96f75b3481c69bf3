"""Small request helpers every endpoint module shares (paths, paging, ownership, names)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, boolean, integer

__all__ = [
    "color",
    "flag",
    "iso",
    "listed",
    "owned",
    "page",
    "param",
    "path_int",
    "require_pro",
    "save",
    "storage_quota",
    "trade_of",
    "unique",
    "within_cap",
]


def param(ctx: Ctx, name: str, check: Any, default: Any = None) -> Any:
    """A query or form value through a check; a bad one is a 400 naming it."""
    raw = ctx.params.get(name, ctx.form.get(name, default))
    if raw is None:
        return None
    try:
        return check(raw)
    except ValueError as exc:
        raise Invalid({name: str(exc)}) from None


def color(value: Any) -> Any:
    if not isinstance(value, str) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
        raise ValueError("must be a #RRGGBB colour")
    return value


def path_int(ctx: Ctx, name: str) -> int:
    raw = ctx.path[name]
    if not raw.isdigit():
        raise ApiError(404, "not_found", "Not found.")
    return int(raw)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trade_of(ctx: Ctx, *, archived_ok: bool = False) -> dict[str, Any]:
    number = path_int(ctx, "n")
    for trade in ctx.store.all("trade", ctx.uid):
        if trade["trade_number"] == number:
            if trade.get("archived") and not archived_ok:
                raise ApiError(404, "not_found", "Trade is archived.")
            return trade
    raise ApiError(404, "not_found", "Trade not found.")


def storage_quota(user: dict[str, Any]) -> int:
    """The account-wide file budget: the plan's (5 GB Pro, 1 GB Free) unless the user
    document sets `storage_quota_bytes` (tests and `SandboxState.set_storage_quota`)."""
    override = user.get("storage_quota_bytes")
    if override is not None:
        return int(override)
    return (5 if user["plan"] == "pro" else 1) * 1024**3


def owned(ctx: Ctx, kind: str, doc_id: int, what: str) -> dict[str, Any]:
    doc = ctx.store.get(kind, doc_id, ctx.uid)
    if doc is None:
        raise ApiError(404, "not_found", f"{what} not found.")
    return doc


def page(
    ctx: Ctx, rows: list[Any], default: int = 50, cap: int = 500
) -> tuple[list[Any], dict[str, Any]]:
    limit = param(ctx, "limit", integer(1, cap), default)
    offset = param(ctx, "offset", integer(0), 0)
    return rows[offset : offset + limit], {
        "total_count": len(rows),
        "has_more": offset + limit < len(rows),
    }


_ID_FIELD = {
    "tag_category": "category_id",
    "tag": "tag_id",
    "account": "account_id",
    "strategy": "strategy_id",
    "copy_group": "group_id",
    "goal": "goal_id",
    "protocol": "protocol_id",
}


def listed(ctx: Ctx, name: str, rows: list[Any], default: int = 50, cap: int = 500) -> Result:
    """One page of `rows` under `name`, with `total_count` and `has_more` beside them."""
    chunk, meta = page(ctx, rows, default, cap)
    return Result(data={name: chunk, **meta})


def save(ctx: Ctx, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Store the caller's document of this kind under its id; returns it."""
    ctx.store.put(kind, doc[_ID_FIELD[kind]], ctx.uid, doc)
    return doc


def require_pro(ctx: Ctx, message: str) -> None:
    """A feature of the Pro plan: any other plan is a 429 `limit_reached` naming both."""
    if not ctx.pro:
        raise ApiError(
            429, "limit_reached", message, {"plan": ctx.user["plan"], "required_plan": "pro"}
        )


def within_cap(ctx: Ctx, caps: dict[str, int], current: int, what: str) -> None:
    """The plan's cap on live documents of a kind: reaching it is a 429 `limit_reached`."""
    cap = caps[ctx.user["plan"]]
    if current >= cap:
        raise ApiError(
            429,
            "limit_reached",
            f"Your plan allows {cap} {what}.",
            {"limit": cap, "current": current, "plan": ctx.user["plan"]},
        )


def unique(ctx: Ctx, kind: str, field: str, value: str, skip: int | None = None) -> None:
    """409 duplicate_name when another live document of this kind has the same name."""
    id_field = _ID_FIELD[kind]
    for doc in ctx.store.all(kind, ctx.uid):
        if doc.get("is_archived") or doc[id_field] == skip:
            continue
        if doc[field].casefold() == value.casefold():
            label = kind.replace("_", " ")
            raise ApiError(409, "duplicate_name", f"A {label} named {value!r} already exists.")


def flag(ctx: Ctx, name: str) -> bool:
    """A boolean query parameter (`true`/`false`/`1`/`0`); absent is false."""
    raw = ctx.params.get(name)
    if raw is None or raw == "":
        return False
    try:
        return bool(boolean()(raw))
    except ValueError as exc:
        raise Invalid({name: str(exc)}) from None
