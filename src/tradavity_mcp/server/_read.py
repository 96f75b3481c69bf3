"""Reading the journal: one set of functions behind both the read tools and the resources.

Results are compact: the API's envelopes are gone, nulls are dropped, trade rows are
flattened, and reference lists carry just what a model needs to speak in names.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from ..errors import NotFound, ValidationFailed
from ._calls import UserError
from ._workspace import Workspace

__all__ = [
    "CATALOG",
    "LISTS",
    "RANGES",
    "STATS_KINDS",
    "calendar",
    "compact",
    "find_trades",
    "get_trade",
    "lookup",
    "stats",
]

RANGES = ("today", "yesterday", "7d", "30d", "90d", "mtd", "ytd", "all")
STATS_KINDS = ("summary", "by-symbol", "by-strategy")
CATALOG = ("me", "usage", "brokers", "instruments", "prop-firm-presets", "scopes", "emotions")
LISTS = ("accounts", "tags", "strategies", "protocols", "connections")

StatsKind = Literal["summary", "by-symbol", "by-strategy"]


def compact(value: Any) -> Any:
    """Drop nulls (and empty strings) everywhere; keep zeros, falses and empty lists."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def _name(value: Any) -> Any:
    """`{"id": 3, "name": "Apex"}` -> "Apex"; anything else unchanged."""
    if isinstance(value, dict):
        return value.get("name") or value.get("account_name") or value.get("id")
    return value


def _filters(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def _date_filters(range_: str | None, from_: str | None, to: str | None) -> dict[str, Any]:
    if range_ is not None and range_ not in RANGES:
        raise UserError(f"range must be one of {', '.join(RANGES)}; got {range_!r}")
    for name, value in (("from_date", from_), ("to_date", to)):
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise UserError(f"{name} must be a date, YYYY-MM-DD; got {value!r}") from None
    return _filters(range=range_, **{"from": from_}, to=to)


async def _api(call: Any, *, subject: str) -> Any:
    try:
        return await call
    except NotFound:
        raise UserError(f"{subject} was not found") from None
    except ValidationFailed as exc:
        allowed = exc.details.get("allowed")
        hint = f" (allowed: {', '.join(map(str, allowed))})" if isinstance(allowed, list) else ""
        raise UserError(f"Tradavity refused the filters: {exc.message}{hint}") from None


async def find_trades(
    ws: Workspace, *, limit: int = 20, cursor: str | None = None, **filters: Any
) -> dict[str, Any]:
    account = filters.get("account")
    subject = f"account {account!r}" if account is not None else "trades"
    page = await _api(
        ws.api.list_trades(limit=limit, cursor=cursor, **_filters(**filters)), subject=subject
    )
    rows = []
    for row in page.items:
        data = row.model_dump(mode="json")
        for key in ("account", "strategy", "setup", "top_tag"):
            data[key] = _name(data.get(key))
        rows.append(compact(data))
    out: dict[str, Any] = {"trades": rows, "count": len(rows)}
    if page.has_more and page.next_cursor:
        out["next_cursor"] = page.next_cursor
    return out


async def get_trade(ws: Workspace, trade_number: int) -> dict[str, Any]:
    trade = await _api(ws.api.get_trade(trade_number), subject=f"trade #{trade_number}")
    data = trade.model_dump(mode="json")
    data["tags"] = [t.get("name", t) if isinstance(t, dict) else t for t in data.get("tags", [])]
    for key in ("strategy", "setup"):
        data[key] = _name(data.get(key))
    result: dict[str, Any] = compact(data)
    return result


async def stats(
    ws: Workspace,
    kind: str = "summary",
    *,
    range_: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    account: str | int | None = None,
) -> dict[str, Any]:
    if kind not in STATS_KINDS:
        raise UserError(f"kind must be one of {', '.join(STATS_KINDS)}")
    params = {**_date_filters(range_, from_, to), **_filters(account=account)}
    data = await _api(ws.api.stats(kind, **params), subject="stats")
    result: dict[str, Any] = compact(data)
    return result


async def calendar(
    ws: Workspace,
    *,
    range_: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    account: str | int | None = None,
) -> dict[str, Any]:
    if range_ is None and (from_ is None or to is None):
        range_ = "mtd" if from_ is None and to is None else None
        if range_ is None:
            raise UserError("pass both from and to (YYYY-MM-DD), or a range")
    params = {**_date_filters(range_, from_, to), **_filters(account=account)}
    data = await _api(ws.api.calendar(**params), subject="calendar")
    result: dict[str, Any] = compact(data)
    return result


async def lookup(ws: Workspace, name: str, query: str | None = None) -> Any:
    """A catalog entry or a reference list; `query` filters (or picks one protocol/strategy)."""
    if name in CATALOG:
        params = {"search": query} if query and name == "instruments" else {}
        data = await _api(ws.api.catalog(name, **params), subject=name)
        return compact(data)
    if name == "accounts":
        rows: list[dict[str, Any]] = [
            {
                "id": a.id,
                "name": a.account_name,
                "type": a.account_type,
                "currency": a.currency,
                "broker": a.broker_key,
                "archived": a.is_archived or None,
            }
            for a in await ws.ref.accounts()
        ]
    elif name == "tags":
        categories = {c.id: c.name for c in await ws.ref.tag_categories()}
        rows = [
            {"id": t.id, "name": t.name, "category": categories.get(t.category_id or -1)}
            for t in await ws.ref.tags()
        ]
    elif name == "strategies":
        rows = []
        for s in await ws.ref.strategies():
            detail = await ws.ref.strategy(s.id)
            setups = [str(x.get("name")) for x in detail.setups]
            rows.append({"id": s.id, "name": s.name, "setups": setups})
    elif name == "protocols":
        if query:
            proto = await ws.ref.protocol_by_ref(query)
            return compact(
                {
                    "id": proto.protocol_id,
                    "name": proto.name,
                    "type": proto.type,
                    "items": [
                        {
                            "id": i.item_id,
                            "label": i.label,
                            "type": i.item_type,
                            "options": i.options,
                            "required": i.required or None,
                        }
                        for i in proto.items
                    ],
                }
            )
        rows = [
            {
                "id": p.protocol_id,
                "name": p.name,
                "type": p.type,
                "default": p.is_default or None,
                "active": p.is_active,
            }
            for p in await ws.ref.protocols()
        ]
    elif name == "connections":
        rows = [
            {
                "id": c.connection_id,
                "broker": c.broker_name or c.broker_key,
                "account": c.account_name,
                "active": c.is_active,
                "status": c.status,
                "last_sync": c.last_sync_at,
            }
            for c in await ws.ref.connections()
        ]
    else:
        raise UserError(f"unknown list {name!r}; one of {', '.join((*LISTS, *CATALOG))}")
    if query and name != "protocols":
        fold = query.casefold()
        rows = [r for r in rows if fold in str(r.get("name", "")).casefold()]
    result: list[dict[str, Any]] = compact(rows)
    return result
