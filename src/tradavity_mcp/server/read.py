"""Reading the journal: one set of functions behind both the read tools and the resources.

Results are compact: the API's envelopes are gone, nulls are dropped, trade rows are
flattened, and reference lists carry just what a model needs to speak in names.

Results are also bounded, whatever the journal's size: a read result (text and
structured content together) stays within `RESULT_BUDGET` characters. What does not
fit is grouped or cut, and the result says so in a `note`: a long calendar comes by
week or month, stats by symbol or strategy show the most traded rows and sum the rest,
a trade list holds at most `TRADE_ROWS_CAP` rows (the cursor continues after them), and
anything else keeps the head of its longest lists with the count left out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from functools import partial
from typing import Any, Literal, TypeVar, get_args

from ..api.errors import NotFound, ValidationFailed
from ..api.models import Protocol
from . import cpu
from .errors import UserError
from .when import LocalClock
from .workspace import Workspace

__all__ = [
    "CATALOG",
    "DATA_BUDGET",
    "LISTS",
    "RANGES",
    "RESULT_BUDGET",
    "STATS_KINDS",
    "TOP_ROWS",
    "TRADE_ROWS_CAP",
    "CatalogName",
    "ListName",
    "LookupName",
    "Outcome",
    "Range",
    "StatsKind",
    "calendar",
    "compact",
    "dump",
    "find_trades",
    "fit",
    "get_trade",
    "lookup",
    "shape_calendar",
    "shape_stats",
    "size",
    "stats",
]

#: The most characters a read result may take (text and structured content together,
#: as sent): under the 25k-token limit some hosts put on one tool result.
RESULT_BUDGET = 30_000
#: Characters of compact JSON one result's data may take. A tool sends its data twice
#: (as JSON text, escaped, and as structured content), so this leaves room for both.
DATA_BUDGET = 12_000
#: The most rows one page of find_trades holds; a larger limit is honoured by the cursor.
TRADE_ROWS_CAP = 80
#: Stats by symbol or strategy: this many rows (the most traded), then one for the rest.
TOP_ROWS = 20
#: Seconds grouping a long calendar may take, waiting for a thread included (`cpu.run`).
SHAPING_SECONDS = 10.0

Range = Literal["today", "yesterday", "7d", "30d", "90d", "mtd", "ytd", "all"]
StatsKind = Literal["summary", "by-symbol", "by-strategy"]
#: The reference lists `lookup` reads (with their names resolved).
ListName = Literal["accounts", "tags", "strategies", "protocols", "connections"]
#: The catalog `lookup` reads as Tradavity sends it.
CatalogName = Literal[
    "emotions", "me", "usage", "brokers", "instruments", "prop-firm-presets", "scopes"
]
LookupName = Literal[ListName, CatalogName]
Outcome = Literal["win", "loss", "breakeven"]

T = TypeVar("T")

RANGES: tuple[Range, ...] = get_args(Range)
STATS_KINDS: tuple[StatsKind, ...] = get_args(StatsKind)
LISTS: tuple[ListName, ...] = get_args(ListName)
CATALOG: tuple[CatalogName, ...] = get_args(CatalogName)


def dump(value: Any) -> str:
    """JSON as sent to the model: compact separators, text as written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def compact(value: Any) -> Any:
    """Drop nulls (and empty strings) everywhere; keep zeros, falses and empty lists."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def size(value: Any) -> int:
    """Characters of `value` as compact JSON (how results are sent)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _name(value: Any) -> Any:
    """`{"id": 3, "name": "Apex"}` -> "Apex"; anything else unchanged."""
    if isinstance(value, dict):
        return value.get("name") or value.get("account_name") or value.get("id")
    return value


def _filters(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def _date_filters(range_: str | None, from_: str | None, to: str | None) -> dict[str, Any]:
    """The API's date filters, checked: a known range, or dates (the user's local days),
    the first not after the last."""
    if range_ is not None and range_ not in RANGES:
        raise UserError(f"range must be one of {', '.join(RANGES)}; got {range_!r}")
    days: dict[str, date] = {}
    for name, value in (("from_date", from_), ("to_date", to)):
        if value is not None:
            try:
                days[name] = date.fromisoformat(value)
            except ValueError:
                raise UserError(f"{name} must be a date, YYYY-MM-DD; got {value!r}") from None
    if range_ is not None and days:
        raise UserError(
            f"pass either range ({range_!r}) or from_date/to_date, not both: a range sets "
            "both dates itself"
        )
    if len(days) == 2 and days["from_date"] > days["to_date"]:
        raise UserError(
            f"from_date {from_} is after to_date {to}: the range would hold no day. Pass "
            "the earlier day as from_date (both are the user's local dates, both included)"
        )
    return _filters(range=range_, **{"from": from_}, to=to)


async def _api(call: Awaitable[T], *, subject: str) -> T:
    try:
        return await call
    except NotFound:
        raise UserError(f"{subject} was not found") from None
    except ValidationFailed as exc:
        allowed = exc.details.get("allowed")
        hint = f" (allowed: {', '.join(map(str, allowed))})" if isinstance(allowed, list) else ""
        raise UserError(f"Tradavity refused the filters: {exc.message}{hint}") from None


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """A compact trade row: names for related things, no nulls, `is_copy` only when true."""
    for key in ("account", "strategy", "setup", "top_tag"):
        data[key] = _name(data.get(key))
    if data.get("is_copy") is False:
        del data["is_copy"]
    result: dict[str, Any] = compact(data)
    return result


async def find_trades(
    ws: Workspace,
    *,
    range_: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    fits: Callable[[dict[str, Any]], bool] | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """One page of trade rows, each time with its local form beside it. `range_` is
    turned into the user's local days here (the API's trade list takes dates only); the
    result states the days it covers. At most `TRADE_ROWS_CAP` rows are fetched (a larger
    limit is announced and honoured by the cursor); if the page still does not `fits`
    (very long names), it is fetched again with as many rows as fit, so the cursor stays
    exact."""
    _date_filters(range_, filters.get("from"), filters.get("to"))
    # A range needs the user's zone: "today" in UTC is the very mistake to avoid.
    clock = await ws.local_clock(strict=range_ is not None)
    if range_ is not None:
        first, last = clock.days(range_)
        filters["from"] = first.isoformat() if first else None
        filters["to"] = last.isoformat() if last else None
    span = _filters(range=range_, **{"from": filters.get("from")}, to=filters.get("to"))
    account = filters.pop("account", None)
    subject = f"account {account!r}" if account is not None else "trades"
    # A name is resolved here (active accounts first), not left to the API's reading.
    params = _filters(**filters, account_id=await ws.ref.account_filter(account))
    take = min(limit, TRADE_ROWS_CAP)
    while True:
        page = await _api(ws.api.list_trades(limit=take, cursor=cursor, **params), subject=subject)
        rows = [clock.stamp(_row(row.model_dump(mode="json"))) for row in page.items]
        if params.get("include_archived"):
            await _mark_archived(ws, rows, params)
        out: dict[str, Any] = {"trades": rows, "count": len(rows), "timezone": clock.name}
        if span:
            out["range"] = span
        if page.has_more and page.next_cursor:
            out["next_cursor"] = page.next_cursor
        if take < limit and page.has_more:
            out["note"] = (
                f"{take} of the {limit} rows asked for: one result holds at most {take} "
                f"here; the other {limit - take} (and any after them) continue at next_cursor."
            )
        if not clock.known:
            out["note"] = " ".join(filter(None, [out.get("note"), clock.note + "."]))
        if fits is None or fits(out) or take <= 1:
            return out
        # Cut by the share that fits, then fetch that many again for an exact cursor.
        lo, hi = 1, len(rows) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits({**out, "trades": rows[:mid], "count": mid}):
                lo = mid
            else:
                hi = mid - 1
        take = lo


#: Filters the look for a page's active trades does not take from the page's own.
_SPAN_FILTERS = frozenset({"include_archived", "from", "to", "range", "cursor", "limit"})


async def _mark_archived(ws: Workspace, rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    """Mark the archived rows of a page listed with `include_archived` (the API's rows do
    not say): the same filters without archived trades, over the page's days (a day's
    margin for time zones), name the active ones; the others are archived."""
    days = sorted(str(r["trade_date"])[:10] for r in rows if r.get("trade_date"))
    if not days:
        return
    try:
        first = date.fromisoformat(days[0]) - timedelta(days=1)
        last = date.fromisoformat(days[-1]) + timedelta(days=1)
    except ValueError:
        return
    same = {k: v for k, v in params.items() if k not in _SPAN_FILTERS}
    active = {
        row.trade_number
        async for row in ws.api.iter_trades(
            **same, **{"from": first.isoformat()}, to=last.isoformat(), limit=200
        )
    }
    for row in rows:
        if row.get("trade_date") and row.get("trade_number") not in active:
            row["archived"] = True


async def get_trade(ws: Workspace, trade_number: int) -> dict[str, Any]:
    """One trade in full; an archived trade (the API hides those) as its list row,
    marked archived."""
    try:
        trade = await ws.api.get_trade(trade_number)
    except NotFound:
        archived = await _archived_row(ws, trade_number)
        if archived is None:
            raise UserError(f"trade #{trade_number} was not found") from None
        return archived
    except ValidationFailed as exc:
        raise UserError(f"Tradavity refused the request: {exc.message}") from None
    data = trade.model_dump(mode="json")
    data["tags"] = [t.get("name", t) if isinstance(t, dict) else t for t in data.get("tags", [])]
    for key in ("strategy", "setup"):
        data[key] = _name(data.get(key))
    result: dict[str, Any] = (await ws.local_clock()).stamp(compact(data))
    return fit(result, DATA_BUDGET)


#: How many pages of 200 rows an archived trade is looked for in (newest first).
ARCHIVED_SEARCH_PAGES = 10


async def _archived_row(ws: Workspace, trade_number: int) -> dict[str, Any] | None:
    """The API reads archived trades only through the list (`include_archived`)."""
    cursor: str | None = None
    for _ in range(ARCHIVED_SEARCH_PAGES):
        page = await _api(
            ws.api.list_trades(limit=200, cursor=cursor, include_archived=True),
            subject=f"trade #{trade_number}",
        )
        for row in page.items:
            if row.trade_number == trade_number:
                data: dict[str, Any] = (await ws.local_clock()).stamp(
                    _row(row.model_dump(mode="json"))
                )
                data["archived"] = True
                data["note"] = (
                    "This trade is archived: Tradavity keeps only its summary readable. "
                    "Restore it in Tradavity (within 30 days of archiving) to see fills, "
                    "tags, screenshots and checklists."
                )
                return data
        if not (page.has_more and page.next_cursor):
            return None
        cursor = page.next_cursor
    return None


async def stats(
    ws: Workspace,
    kind: str = "summary",
    *,
    range_: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    account: str | int | None = None,
    budget: int = DATA_BUDGET,
) -> dict[str, Any]:
    if kind not in STATS_KINDS:
        raise UserError(f"kind must be one of {', '.join(STATS_KINDS)}")
    if range_ is None and from_ is None and to is None:
        range_ = "30d"  # the last 30 days: today and the 29 before it, the user's days
    params = {
        **_date_filters(range_, from_, to),
        **_filters(account_id=await ws.ref.account_filter(account)),
    }
    data = await _api(ws.api.stats(kind, **params), subject="stats")
    result: dict[str, Any] = compact(data)
    return fit(shape_stats(result, kind), budget)


async def calendar(
    ws: Workspace,
    *,
    range_: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    account: str | int | None = None,
    budget: int | None = DATA_BUDGET,
) -> dict[str, Any]:
    """Daily P&L; grouped by week or month when the days do not fit `budget` (None: every
    day, as the picture needs)."""
    if range_ is None and (from_ is None or to is None):
        range_ = "mtd" if from_ is None and to is None else None
        if range_ is None:
            raise UserError("pass both from and to (YYYY-MM-DD), or a range")
    params = {
        **_date_filters(range_, from_, to),
        **_filters(account_id=await ws.ref.account_filter(account)),
    }
    data = await _api(ws.api.calendar(**params), subject="calendar")
    # Thousands of days take a tenth of a second to group and measure: off the loop.
    return await cpu.run(
        partial(_bounded_calendar, data, budget),
        seconds=SHAPING_SECONDS,
        what="Reading the calendar",
        advice="Ask again shortly, or for a shorter range.",
    )


def _bounded_calendar(data: Any, budget: int | None, deadline: cpu.Deadline) -> dict[str, Any]:
    result: dict[str, Any] = _in_our_words(compact(data))
    return result if budget is None else fit(shape_calendar(result, budget), budget)


#: The calendar counts decisions (a decision copied to other accounts once), and the API
#: names those counts "trades". Everything we send says "trades" for rows (copies
#: included, as get_stats' `trade_rows`) and "decisions" for copies counted once.
_CALENDAR_WORDS = {
    "trade_count": "decisions",
    "winning_trades": "winning_decisions",
    "losing_trades": "losing_decisions",
    "total_trades": "decisions",
}


def _in_our_words(calendar: dict[str, Any]) -> dict[str, Any]:
    """The API's calendar with its decision counts named as decisions."""

    def renamed(row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        return {_CALENDAR_WORDS.get(k, k): v for k, v in row.items()}

    out = dict(calendar)
    if isinstance(out.get("days"), list):
        out["days"] = [renamed(d) for d in out["days"]]
    if isinstance(out.get("summary"), dict):
        out["summary"] = renamed(out["summary"])
    return out


async def lookup(ws: Workspace, name: str, query: str | None = None) -> Any:
    """A catalog entry or a reference list; `query` filters (or picks one protocol/strategy).
    Times carry their local form (`<key>_local`); `me` also the user's date and time now."""
    clock = await ws.local_clock()
    return clock.stamp(await _lookup(ws, name, query, clock))


async def _lookup(ws: Workspace, name: str, query: str | None, clock: LocalClock) -> Any:
    if name == "me":
        data = await _catalog(ws, name, query)
        if isinstance(data, dict):
            # The user's today: what "today", "yesterday" and a bare time mean to them.
            data = {"local_now": clock.now_fields(), **data}
        return data
    if name in CATALOG:
        return await _catalog(ws, name, query)
    if name == "protocols" and query:
        return _protocol_items(await ws.ref.protocol_by_ref(query))
    rows_of = _LIST_ROWS.get(name)
    if rows_of is None:
        raise UserError(f"unknown list {name!r}; one of {', '.join((*LISTS, *CATALOG))}")
    rows = await rows_of(ws)
    if query:
        fold = query.casefold()
        rows = [r for r in rows if fold in str(r.get("name", "")).casefold()]
    result: list[dict[str, Any]] = compact(rows)
    if size(result) <= DATA_BUDGET:
        return result
    return fit({"items": result}, DATA_BUDGET, hint="pass query to narrow the list")


async def _catalog(ws: Workspace, name: str, query: str | None) -> Any:
    params = {"search": query} if query and name == "instruments" else {}
    data = compact(await _api(ws.api.catalog(name, **params), subject=name))
    if isinstance(data, list) and size(data) > DATA_BUDGET:
        data = {"items": data}
    if isinstance(data, dict):
        hint = "pass query to search" if name == "instruments" else None
        return fit(data, DATA_BUDGET, hint=hint)
    return data


def _protocol_items(proto: Protocol) -> Any:
    items = [
        {
            "id": i.item_id,
            "label": i.label,
            "type": i.item_type,
            "options": i.options,
            "required": i.required or None,
        }
        for i in proto.items
    ]
    return compact(
        {"id": proto.protocol_id, "name": proto.name, "type": proto.type, "items": items}
    )


async def _account_rows(ws: Workspace) -> list[dict[str, Any]]:
    return [
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


async def _tag_rows(ws: Workspace) -> list[dict[str, Any]]:
    categories = {c.id: c.name for c in await ws.ref.tag_categories()}
    return [
        {"id": t.id, "name": t.name, "category": categories.get(t.category_id or -1)}
        for t in await ws.ref.tags()
    ]


async def _strategy_rows(ws: Workspace) -> list[dict[str, Any]]:
    rows = []
    for s in await ws.ref.strategies():
        detail = await ws.ref.strategy(s.id)
        rows.append(
            {"id": s.id, "name": s.name, "setups": [str(x.get("name")) for x in detail.setups]}
        )
    return rows


async def _protocol_rows(ws: Workspace) -> list[dict[str, Any]]:
    return [
        {
            "id": p.protocol_id,
            "name": p.name,
            "type": p.type,
            "default": p.is_default or None,
            "active": p.is_active,
        }
        for p in await ws.ref.protocols()
    ]


async def _connection_rows(ws: Workspace) -> list[dict[str, Any]]:
    return [
        {
            "id": c.connection_id,
            "broker": c.broker_name or c.broker_key,
            "account": c.account_name,
            "active": c.is_active,
            "status": c.status,
            "last_sync_at": c.last_sync_at,
        }
        for c in await ws.ref.connections()
    ]


#: Each reference list `lookup` serves, and how its compact rows are made.
_LIST_ROWS: dict[str, Callable[[Workspace], Awaitable[list[dict[str, Any]]]]] = {
    "accounts": _account_rows,
    "tags": _tag_rows,
    "strategies": _strategy_rows,
    "protocols": _protocol_rows,
    "connections": _connection_rows,
}


# --- bounding ------------------------------------------------------------------------------

_DAY_SUMS = ("net_pnl", "decisions", "winning_decisions", "losing_decisions")


def shape_calendar(data: dict[str, Any], budget: int) -> dict[str, Any]:
    """The calendar as is when its days fit; else by week (Monday to Sunday), else by
    month, else by year. The summary is the API's, unchanged."""
    days = data.get("days")
    if size(data) <= budget or not isinstance(days, list):
        return data
    timezone = (data.get("summary") or {}).get("timezone", "the user's timezone")
    unit = "day"
    for unit, key, start in (
        ("week", "weeks", _week_start),
        ("month", "months", lambda d: d.strftime("%Y-%m")),
        ("year", "years", lambda d: d.strftime("%Y")),
    ):
        groups: dict[str, dict[str, Any]] = {}
        for row in days:
            try:
                day = date.fromisoformat(str(row["date"])[:10])
            except (KeyError, ValueError):
                continue
            label = start(day)
            group = groups.setdefault(label, {unit: label, "traded_days": 0})
            group["traded_days"] += 1
            for name in _DAY_SUMS:
                value = row.get(name)
                if isinstance(value, int | float):
                    group[name] = group.get(name, 0) + value
        rows = [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in g.items()}
            for g in groups.values()
        ]
        what = "Monday to Sunday, labelled by the Monday" if unit == "week" else f"calendar {unit}s"
        shaped = {k: v for k, v in data.items() if k != "days"}
        shaped["grouped_by"] = unit
        shaped[key] = rows
        shaped["note"] = (
            f"{len(days)} traded days are too many to list one by one here: grouped by "
            f"{unit} ({what}; days in {timezone}). Ask for a shorter from_date/to_date "
            "to see single days."
        )
        if size(shaped) <= budget:
            return shaped
    return shaped


def _week_start(day: date) -> str:
    return (day - timedelta(days=day.weekday())).isoformat()


def shape_stats(data: dict[str, Any], kind: str) -> dict[str, Any]:
    """By symbol or strategy: the `TOP_ROWS` most traded rows, then one row summing the
    rest. Summary stats are returned as they are."""
    rows = data.get("rows")
    if kind == "summary" or not isinstance(rows, list) or len(rows) <= TOP_ROWS + 1:
        return data
    label = "symbol" if kind == "by-symbol" else "strategy"
    ranked = sorted(rows, key=lambda r: -(r.get("count") or 0))
    keep = {id(r) for r in ranked[:TOP_ROWS]}
    rest = [r for r in rows if id(r) not in keep]
    shaped = dict(data)
    shaped["rows"] = [r for r in rows if id(r) in keep] + [_sum_rows(rest, label)]
    shaped["note"] = (
        f"The {TOP_ROWS} most traded of {len(rows)} {label} rows (by decisions), in the "
        f"API's order; the last row sums the other {len(rest)}."
    )
    return shaped


def _sum_rows(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    def total(name: str) -> float:
        return sum(float(r.get(name) or 0) for r in rows)

    wins, losses = total("wins"), total("losses")
    won = sum(float(r.get("avg_win") or 0) * float(r.get("wins") or 0) for r in rows)
    lost = sum(float(r.get("avg_loss") or 0) * float(r.get("losses") or 0) for r in rows)
    out: dict[str, Any] = {
        label: f"(the other {len(rows)})",
        "net_pnl": round(total("net_pnl"), 2),
        "count": round(total("count")),
        "wins": round(wins),
        "losses": round(losses),
        "breakevens": round(total("breakevens")),
    }
    if wins + losses:
        out["win_rate_pct"] = round(100 * wins / (wins + losses), 2)
    if wins:
        out["avg_win"] = round(won / wins, 2)
    if losses:
        out["avg_loss"] = round(lost / losses, 2)
    if lost:
        out["profit_factor"] = round(won / -lost, 2)
    return out


def fit(data: dict[str, Any], budget: int, *, hint: str | None = None) -> dict[str, Any]:
    """`data` within `budget` characters: its longest lists keep their head and long
    strings their start, and `left_out` counts what was cut (announced in `note`)."""
    if size(data) <= budget:
        return data
    out = dict(data)
    left_out: dict[str, int] = {}
    lists = sorted(
        (k for k, v in out.items() if isinstance(v, list) and v), key=lambda k: -size(out[k])
    )
    for key in lists:
        items = out[key]
        over = size(out) - budget + 400  # room for the note
        if over <= 0:
            break
        keep = len(items)
        cut = 0
        while keep > 0 and cut < over:
            keep -= 1
            cut += size(items[keep]) + 1
        out[key] = items[:keep]
        left_out[key] = len(items) - keep
    for key, value in list(out.items()):
        if size(out) + 400 <= budget:
            break
        if isinstance(value, str) and len(value) > 500:
            out[key] = value[:500] + "…"
            left_out[key + "_characters"] = len(value) - 500
    if size(out) + 400 > budget:  # nested data too big for the cuts above: keep scalars
        for key, value in list(out.items()):
            if isinstance(value, dict | list):
                del out[key]
                left_out[key] = len(value)
    out["left_out"] = left_out
    counts = ", ".join(f"{n} {k}" for k, n in left_out.items())
    out["note"] = f"Too long for one result: left out {counts}." + (f" {hint}." if hint else "")
    return out
