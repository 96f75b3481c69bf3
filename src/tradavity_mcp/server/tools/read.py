"""The read tools: plain functions over `read`, each result within the budget.

Many hosts show models only tools, so every resource (`resources`) has a read tool
beside it, backed by the same `read` function.
"""

from __future__ import annotations

import base64
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ...api.errors import TradavityError
from ...api.models import AnyCase, Direction, Grade
from .. import cpu, insights, read
from ..cpu import Deadline
from ..errors import UserError, describe_error, reported
from ..read import LookupName, Outcome, Range, StatsKind
from ..when import readable
from ..workspace import Workspace, current_workspace

if TYPE_CHECKING:
    from ..calendar_png import Period

__all__ = ["NoBool", "Whole", "find_trades", "get_calendar", "get_stats", "get_trade", "lookup"]


def _no_bool(accepts: str) -> BeforeValidator:
    """`true` is not account #1, trade #1 nor a P&L of 1: refuse a boolean where a name,
    id or number is expected (the SDK's lax check would take it). Placed after a field's
    constraints, so they stay in its schema."""

    def check(value: object) -> object:
        if isinstance(value, bool):
            raise PydanticCustomError(
                "not_bool", "takes {accepts}; got {given}",
                {"accepts": accepts, "given": str(value).lower()},
            )  # fmt: skip
        return value

    return BeforeValidator(check)


NoBool = _no_bool("a name, id or number")
Whole = _no_bool("a whole number")
#: A day (the schema's `format: date` says YYYY-MM-DD; no description repeats it).
DateArg = Annotated[date | None, Field()]
Short = Annotated[str | None, Field(max_length=100)]
AccountArg = Annotated[str | int | None, NoBool, Field(description="Account name or id")]
Money = Annotated[float | None, NoBool]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _result(value: Any, text: str | None = None) -> CallToolResult:
    """The result, within `read.RESULT_BUDGET` characters as sent (a last guard: the
    `read` functions already bound their data)."""
    result = _make_result(value, text)
    if _sent_size(result) <= read.RESULT_BUDGET:
        return result
    structured = value if isinstance(value, dict) else {"items": value}
    budget = read.DATA_BUDGET
    while budget > 500:
        budget //= 2
        smaller = read.fit(structured, budget)
        result = _make_result(smaller, None)
        if _sent_size(result) <= read.RESULT_BUDGET:
            return result
    return _make_result({"note": "The result was too long to send."}, None)


def _make_result(value: Any, text: str | None) -> CallToolResult:
    """Structured content as is (times in UTC, each with its local form beside it); the
    text shows each time in its local form alone."""
    structured = value if isinstance(value, dict) else {"items": value}
    return CallToolResult(
        content=[TextContent(type="text", text=text or read.dump(readable(value)))],
        structured_content=structured,
    )


def _sent_size(result: CallToolResult) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


def _page_fits(page: dict[str, Any]) -> bool:
    return _sent_size(_make_result(page, _trades_text(page))) <= read.RESULT_BUDGET


async def find_trades(
    range: Annotated[Range, AnyCase] | None = None,
    from_date: DateArg = None,
    to_date: DateArg = None,
    account: AccountArg = None,
    symbol: Short = None,
    direction: Annotated[Direction, AnyCase] | None = None,
    strategy: Annotated[str | int | None, NoBool, Field(description="Name or id")] = None,
    setup: Short = None,
    grade: Annotated[Grade, AnyCase] | None = None,
    tag: Short = None,
    outcome: Annotated[Outcome, AnyCase] | None = None,
    pnl_min: Money = None,
    pnl_max: Money = None,
    is_copy: bool | None = None,
    include_archived: bool | None = None,
    limit: Annotated[int, Field(ge=1, le=200), Whole] = 20,
    cursor: Annotated[str | None, Field(description="next_cursor from the last page")] = None,
) -> CallToolResult:
    """List trades, newest first, with filters, in the user's days. Rows are compact;
    get_trade gives one in full."""
    with reported():
        data = await read.find_trades(
            current_workspace(),
            range_=range,
            limit=limit,
            cursor=cursor,
            fits=_page_fits,
            **{"from": _iso(from_date), "to": _iso(to_date)},
            account=account,
            symbol=symbol,
            direction=direction,
            strategy=strategy,
            setup=setup,
            grade=grade,
            tag=tag,
            outcome=outcome,
            pnl_min=pnl_min,
            pnl_max=pnl_max,
            is_copy=is_copy,
            include_archived=include_archived,
        )
    return _result(data, _trades_text(data))


async def get_trade(
    trade_number: Annotated[int, Field(ge=1, description="Trade number (#)"), Whole],
    include_images: Annotated[bool, Field(description="Show its charts as images")] = True,
) -> CallToolResult:
    """One trade in full: fills, tags, confirmations, screenshots (as images), checklists."""
    ws = current_workspace()
    with reported():
        data = await read.get_trade(ws, trade_number)
    result = _result(data)
    if include_images:
        result.content.extend(await _chart_blocks(ws, trade_number, data.get("screenshots")))
    return result


#: Seconds scaling one chart may take (a 4K chart takes well under one).
CHART_SECONDS = 10.0


def _shrunk(raw: bytes, deadline: Deadline) -> tuple[bytes, str]:
    from ..charts import shrink  # noqa: PLC0415 (Pillow only when a chart is shown)

    return shrink(raw, deadline)


async def _chart_blocks(ws: Workspace, trade_number: int, rows: Any) -> list[Any]:
    """Each image screenshot (`charts.MAX_CHARTS` at most) as a caption and the image,
    scaled down (`charts.shrink`, in a worker thread); one that cannot be shown, said."""
    from ..charts import MAX_CHARTS  # noqa: PLC0415

    shots = [r for r in rows or [] if isinstance(r, dict) and r.get("screenshot_id") is not None]
    images = [r for r in shots if str(r.get("file_type", "")).lower() in {"png", "jpg", "jpeg"}]
    blocks: list[Any] = []
    for row in images[:MAX_CHARTS]:
        sid = int(row["screenshot_id"])
        caption = f"Screenshot {sid}" + (f" ({row['label']})" if row.get("label") else "")
        try:
            raw = await ws.api.download_screenshot(trade_number, sid)
            small, mime = await cpu.run(
                partial(_shrunk, raw),
                seconds=CHART_SECONDS,
                what="Scaling the chart",
                advice="Call get_trade with include_images false for the trade alone.",
            )
        except (TradavityError, UserError) as exc:
            said = describe_error(exc, subject=f"screenshot {sid}")
            blocks.append(TextContent(type="text", text=f"{caption}: not shown ({said})."))
            continue
        blocks.append(TextContent(type="text", text=f"{caption}:"))
        blocks.append(
            ImageContent(type="image", data=base64.b64encode(small).decode(), mime_type=mime)
        )
    rest = len(shots) - len(images[:MAX_CHARTS])
    if rest:
        blocks.append(
            TextContent(
                type="text",
                text=f"{rest} more screenshot(s) not shown (PDFs, or past {MAX_CHARTS}).",
            )
        )
    return blocks


async def get_stats(
    kind: Annotated[StatsKind, AnyCase] = "summary",
    range: Annotated[Range, AnyCase] | None = None,
    from_date: DateArg = None,
    to_date: DateArg = None,
    account: AccountArg = None,
) -> CallToolResult:
    """P&L stats: totals (every row) and decisions (copies once) with n, win rate and its
    95% interval, expectancy, profit factor; by tag, weekday, hour, grade, setup or
    checklist too. Default: last 30 days."""
    with reported():
        data = await read.stats(
            current_workspace(),
            kind,
            range_=range,
            from_=_iso(from_date),
            to=_iso(to_date),
            account=account,
        )
    if kind in insights.BREAKDOWNS and "rows" in data:
        return _result(data, insights.breakdown_text(data))
    return _result(data)


async def get_calendar(
    range: Annotated[Range, AnyCase] | None = None,
    from_date: DateArg = None,
    to_date: DateArg = None,
    account: AccountArg = None,
    format: Annotated[
        Annotated[Literal["json", "image"], AnyCase],
        Field(description="image: a month heatmap (PNG)"),
    ] = "json",
) -> CallToolResult:
    """Daily P&L in the user's timezone (default: this month), as data or a picture (at
    most 36 months drawn, up to the last with trades; the rest summed in words)."""
    with reported():
        ws = current_workspace()
        data = await read.calendar(
            ws,
            range_=range,
            from_=_iso(from_date),
            to=_iso(to_date),
            account=account,
            budget=None if format == "image" else read.DATA_BUDGET,
        )
        if format == "image":
            span = data.get("range")
            dated = isinstance(span, dict) and span.get("from") and span.get("to")
            if not data.get("days") and not dated:
                # Nothing to place (`all`, no trades): the user's month, not the server's.
                today = (await ws.local_clock()).today
                month = {"from": today.replace(day=1).isoformat(), "to": today.isoformat()}
                data = {**data, "range": {**(span if isinstance(span, dict) else {}), **month}}
            return await cpu.run(
                partial(_calendar_image, data),
                seconds=PICTURE_SECONDS,
                what="The calendar picture",
                advice="Ask again shortly, or for a shorter range, or with format json.",
            )
    return _result(data)


async def lookup(
    name: Annotated[LookupName, AnyCase],
    query: Annotated[
        str | None, Field(description="Filter by name; for protocols, one protocol's items")
    ] = None,
) -> CallToolResult:
    """Reference lists (accounts, tags, strategies with setups, checklists and their
    items, broker connections) and the catalog."""
    with reported():
        return _result(await read.lookup(current_workspace(), name, query))


def _trades_text(data: dict[str, Any]) -> str:
    """One line per trade, its time the user's own (`2026-12-07 09:42 EST`), under a line
    that names the days listed."""
    rows = data.get("trades", [])
    lines = [_span_text(data)] if data.get("range") else []
    if not rows:
        lines.append("No trades match.")
    for r in rows:
        pnl = r.get("net_pnl")
        pnl_text = f"{pnl:+,.2f}" if isinstance(pnl, int | float) else "?"
        extra = " ".join(str(r[k]) for k in ("grade", "strategy", "setup", "top_tag") if r.get(k))
        when = r.get("trade_date_local") or "(no time)"
        lines.append(
            f"#{r.get('trade_number')} {when} {r.get('symbol')} "
            f"{r.get('direction')} {pnl_text} {r.get('account') or ''} {extra}".rstrip()
        )
        lines[-1] += _marks(r)
    if data.get("note"):
        lines.append(f"({data['note']})")
    if data.get("next_cursor"):
        lines.append(f"(more: cursor={data['next_cursor']})")
    return "\n".join(lines)


def _marks(row: dict[str, Any]) -> str:
    """A copy and an archived trade say so in a list: " (copy)", " (archived)"."""
    marks = [word for key, word in (("is_copy", "copy"), ("archived", "archived")) if row.get(key)]
    return f" ({', '.join(marks)})" if marks else ""


def _span_text(data: dict[str, Any]) -> str:
    """`Trades today, 2026-12-07 (America/New_York):` and the like."""
    span = data.get("range") or {}
    first, last, name = span.get("from"), span.get("to"), span.get("range")
    if first and first == last:
        days = f"on {first}"
    elif first and last:
        days = f"from {first} to {last}"
    elif first:
        days = f"from {first}"
    elif last:
        days = f"up to {last}"
    else:
        days = "of every day"
    label = f" ({name})" if name and name != "all" else ""
    return f"Trades {days}{label}, the user's days in {data.get('timezone', 'UTC')}:"


#: Seconds the calendar picture may take, waiting for a drawing thread included; past
#: them it is refused in words (`cpu.TooSlow`).
PICTURE_SECONDS = 5.0


def _calendar_image(data: dict[str, Any], deadline: Deadline) -> CallToolResult:
    """The picture and its words (run in a worker thread, by `cpu.run`): at most
    `MAX_MONTHS` months drawn; the rest of a longer range summed by year in the text."""
    # Pillow loads only when a picture is drawn.
    from ..calendar_png import fitting, month_totals, not_drawn, window  # noqa: PLC0415

    days: dict[date, float] = {}
    for row in data.get("days", []):
        try:
            days[date.fromisoformat(str(row["date"])[:10])] = float(row.get("net_pnl", 0))
        except (KeyError, ValueError, TypeError):
            continue
    first, last = _picture_range(data, days)
    drawn = window(first, last, days)
    months = month_totals(*drawn, days)
    total = round(sum(v for d, v in days.items() if first <= d <= last), 2)
    listed = "; ".join(f"{date(y, m, 1):%B %Y} net {net:+,.2f}" for (y, m), net in months.items())
    structured: dict[str, Any] = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "net_pnl": total,
        "months": [{"month": f"{y}-{m:02d}", "net_pnl": net} for (y, m), net in months.items()],
    }
    head = f"P&L calendar {_span(first, last)}: net {total:+,.2f}"
    text = f"{head} ({listed})."
    if drawn != (first, last):
        traded = any(drawn[0] <= d <= drawn[1] for d in days)
        rest = _not_drawn(structured, drawn, not_drawn(first, last, drawn, days), traded)
        text = f"{head}. {structured['note']} Drawn: {listed}. Not drawn: {rest}."
    deadline.check()
    # The picture may take what the words leave of the budget (base64: 4 characters
    # for every 3 bytes).
    room = read.RESULT_BUDGET - _sent_size(_picture_result("", text, structured))
    picture = fitting(*drawn, days, max_bytes=room // 4 * 3, check=deadline.check)
    if picture is None:  # not seen: `CELLS` estimates leave room at the smallest size
        structured["note"] = "The picture would be too large to send; its numbers follow."
        return CallToolResult(
            content=[TextContent(type="text", text=f"{structured['note']} {text}")],
            structured_content=structured,
        )
    return _picture_result(base64.b64encode(picture[0]).decode(), text, structured)


def _not_drawn(
    structured: dict[str, Any], drawn: tuple[date, date], rest: list[Period], traded: bool
) -> str:
    """For a picture that draws part of its range: what it shows (a `note`) and the rest
    by year (`not_drawn`), added to `structured`; the rest in words."""
    from ..calendar_png import MAX_MONTHS  # noqa: PLC0415

    which = "up to the last month with trades" if traded else "the range's last months"
    structured["drawn"] = {"from": drawn[0].isoformat(), "to": drawn[1].isoformat()}
    structured["not_drawn"] = [
        {
            "from": p.first.isoformat(),
            "to": p.last.isoformat(),
            "net_pnl": p.net_pnl,
            "traded_days": p.traded_days,
        }
        for p in rest
    ]
    structured["note"] = (
        f"The picture draws at most {MAX_MONTHS} months: it shows {_span(*drawn)} "
        f"({which}); the rest of the range is summed by year in the text."
    )
    return "; ".join(f"{_span(p.first, p.last)}: {_period(p)}" for p in rest)


def _period(p: Period) -> str:
    if not p.traded_days:
        return "no trades"
    days = "1 traded day" if p.traded_days == 1 else f"{p.traded_days} traded days"
    return f"net {p.net_pnl:+,.2f} on {days}"


def _picture_result(encoded: str, text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[
            ImageContent(type="image", data=encoded, mime_type="image/png"),
            TextContent(type="text", text=text),
        ],
        structured_content=structured,
    )


def _span(first: date, last: date) -> str:
    return f"{first:%b %-d, %Y} - {last:%b %-d, %Y}"


def _picture_range(data: dict[str, Any], days: dict[date, float]) -> tuple[date, date]:
    """The range the API answered for; else the days it holds; else this month."""
    span = data.get("range")
    if isinstance(span, dict):
        try:
            return date.fromisoformat(str(span["from"])[:10]), date.fromisoformat(
                str(span["to"])[:10]
            )
        except (KeyError, ValueError):
            pass
    if days:
        return min(days), max(days)
    today = date.today()
    return today.replace(day=1), today
