"""Read tools, resources and completions: the same `_read` functions behind each.

Many hosts show models only tools, so every resource has a read tool beside it.
Resources and completions get no `Context` from the SDK; they find the request's
workspace through `current_workspace()`, which the server's middleware sets for the
duration of every request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import date
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import (
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    ImageContent,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field

from ...api.errors import TradavityError
from .. import read
from ..errors import UserError, describe_error
from ..workspace import Workspace

__all__ = ["CURRENT_WORKSPACE", "READ_TOOLS", "current_workspace", "register_read_tools"]

#: tool -> scope it needs to be listed.
READ_TOOLS: dict[str, str] = {
    "find_trades": "read:trades",
    "get_trade": "read:trades",
    "get_stats": "read:trades",
    "get_calendar": "read:trades",
    "lookup": "read:catalog",
}

#: The workspace of the request being handled (set by the server's middleware).
CURRENT_WORKSPACE: ContextVar[Workspace | None] = ContextVar("tradavity_workspace", default=None)

_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
JSON = "application/json"

CompletionHandler = Callable[
    [PromptReference | ResourceTemplateReference, CompletionArgument, CompletionContext | None],
    Awaitable[Completion | None],
]

Range = Literal["today", "yesterday", "7d", "30d", "90d", "mtd", "ytd", "all"]
DateArg = Annotated[date | None, Field(description="YYYY-MM-DD")]


Short = Annotated[str | None, Field(max_length=100)]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


AccountArg = Annotated[str | int | None, Field(description="Account name or id")]


def current_workspace() -> Workspace:
    ws = CURRENT_WORKSPACE.get()
    if ws is None:
        raise ResourceError("no workspace for this request")
    return ws


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _result(value: Any, text: str | None = None) -> CallToolResult:
    """The result, within `read.RESULT_BUDGET` characters as sent (a last guard: the
    `_read` functions already bound their data)."""
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
    structured = value if isinstance(value, dict) else {"items": value}
    return CallToolResult(
        content=[TextContent(type="text", text=text or _dump(value))],
        structured_content=structured,
    )


def _sent_size(result: CallToolResult) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


async def _guard(coro: Any) -> Any:
    try:
        return await coro
    except (UserError, TradavityError) as exc:
        raise ToolError(describe_error(exc)) from None


async def _resource(coro: Any) -> str:
    try:
        value = await coro
    except (UserError, TradavityError) as exc:
        raise ResourceError(describe_error(exc)) from None
    text = _dump(value)
    if len(text) > read.DATA_BUDGET * 2:  # a last guard: `_read` already bounds its data
        structured = value if isinstance(value, dict) else {"items": value}
        text = _dump(read.fit(structured, read.DATA_BUDGET))
    return text


def register_read_tools(mcp: MCPServer, workspace: Callable[[Context], Workspace]) -> None:
    """Register the read tools, the resources and the completion handler."""

    @mcp.tool(title="Find trades", annotations=_READ)
    async def find_trades(
        ctx: Context,
        from_date: DateArg = None,
        to_date: DateArg = None,
        account: AccountArg = None,
        symbol: Short = None,
        direction: Literal["long", "short"] | None = None,
        strategy: Annotated[str | int | None, Field(description="Name or id")] = None,
        setup: Short = None,
        grade: Literal["A+", "A", "B", "C", "F"] | None = None,
        tag: Short = None,
        outcome: Literal["win", "loss", "breakeven"] | None = None,
        pnl_min: float | None = None,
        pnl_max: float | None = None,
        is_copy: bool | None = None,
        include_archived: bool | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor from the last page")] = None,
    ) -> CallToolResult:
        """List trades, newest first, with filters. Rows are compact; use get_trade for one
        trade in full."""
        data = await _guard(
            read.find_trades(
                workspace(ctx),
                limit=limit,
                cursor=cursor,
                fits=lambda page: (
                    _sent_size(_make_result(page, _trades_text(page))) <= read.RESULT_BUDGET
                ),
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
        )
        return _result(data, _trades_text(data))

    @mcp.tool(title="Get trade", annotations=_READ)
    async def get_trade(
        ctx: Context,
        trade_number: Annotated[int, Field(ge=1, description="Trade number (#)")],
    ) -> CallToolResult:
        """One trade in full: fills, tags, confirmations, screenshots, checklists."""
        return _result(await _guard(read.get_trade(workspace(ctx), trade_number)))

    @mcp.tool(title="Get stats", annotations=_READ)
    async def get_stats(
        ctx: Context,
        kind: Literal["summary", "by-symbol", "by-strategy"] = "summary",
        range: Range | None = None,
        from_date: DateArg = None,
        to_date: DateArg = None,
        account: AccountArg = None,
    ) -> CallToolResult:
        """P&L statistics: totals (every row) and decisions (copies count once: win rate,
        expectancy, profit factor). Default range: last 30 days."""
        data = await _guard(
            read.stats(
                workspace(ctx),
                kind,
                range_=range,
                from_=_iso(from_date),
                to=_iso(to_date),
                account=account,
            )
        )
        return _result(data)

    @mcp.tool(title="Get P&L calendar", annotations=_READ)
    async def get_calendar(
        ctx: Context,
        range: Range | None = None,
        from_date: DateArg = None,
        to_date: DateArg = None,
        account: AccountArg = None,
        format: Annotated[
            Literal["json", "image"], Field(description="image: a month heatmap (PNG)")
        ] = "json",
    ) -> CallToolResult:
        """Daily P&L in the user's timezone (default: this month), as data or a picture."""
        data = await _guard(
            read.calendar(
                workspace(ctx),
                range_=range,
                from_=_iso(from_date),
                to=_iso(to_date),
                account=account,
                budget=None if format == "image" else read.DATA_BUDGET,
            )
        )
        if format == "image":
            return _calendar_image(data)
        return _result(data)

    @mcp.tool(title="Look up", annotations=_READ)
    async def lookup(
        ctx: Context,
        name: Literal[
            "accounts",
            "tags",
            "strategies",
            "protocols",
            "connections",
            "emotions",
            "me",
            "usage",
            "brokers",
            "instruments",
            "prop-firm-presets",
            "scopes",
        ],
        query: Annotated[
            str | None, Field(description="Filter by name; for protocols, one protocol's items")
        ] = None,
    ) -> CallToolResult:
        """Reference lists (accounts, tags, strategies with setups, checklists and their
        items, broker connections) and the catalog."""
        return _result(await _guard(read.lookup(workspace(ctx), name, query)))

    # --- resources -----------------------------------------------------------------------

    @mcp.resource(
        "tradavity://stats/{kind}{?range,from_date,to_date,account}",
        name="stats",
        title="Stats",
        description="summary, by-symbol or by-strategy; range or from_date/to_date; account",
        mime_type=JSON,
    )
    async def stats_resource(
        kind: str,
        range: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        account: str | None = None,
    ) -> str:
        return await _resource(
            read.stats(
                current_workspace(),
                kind,
                range_=range,
                from_=from_date,
                to=to_date,
                account=account,
            )
        )

    @mcp.resource(
        "tradavity://calendar{?range,from_date,to_date,account}",
        name="calendar",
        title="P&L calendar",
        description="Daily P&L in the user's timezone (default: this month)",
        mime_type=JSON,
    )
    async def calendar_resource(
        range: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        account: str | None = None,
    ) -> str:
        return await _resource(
            read.calendar(
                current_workspace(), range_=range, from_=from_date, to=to_date, account=account
            )
        )

    @mcp.resource(
        "tradavity://catalog/{name}",
        name="catalog",
        title="Catalog",
        description="me, usage, brokers, instruments, prop-firm-presets, scopes or emotions",
        mime_type=JSON,
    )
    async def catalog_resource(name: str) -> str:
        if name not in read.CATALOG:
            raise ResourceError(f"unknown catalog {name!r}; one of {', '.join(read.CATALOG)}")
        return await _resource(read.lookup(current_workspace(), name))

    @mcp.resource(
        "tradavity://trades/{trade_number}",
        name="trade",
        title="Trade",
        description="One trade in full (an archived trade: its summary row, marked archived)",
        mime_type=JSON,
    )
    async def trade_resource(trade_number: str) -> str:
        if not trade_number.isdigit():
            raise ResourceError("trade_number must be a whole number")
        return await _resource(read.get_trade(current_workspace(), int(trade_number)))

    for list_name, title, description in (
        ("accounts", "Accounts", "Trading accounts: id, name, type, currency, broker"),
        ("tags", "Tags with categories", "Tags: id, name and category"),
        ("strategies", "Strategies with setups", "Strategies: id, name and setup names"),
        (
            "protocols",
            "Protocols (checklists)",
            "Protocols (checklists and reviews): id, name, type; items per protocol at "
            "tradavity://protocols/{protocol}",
        ),
    ):
        _register_list(mcp, list_name, title, description)

    @mcp.resource(
        "tradavity://protocols/{protocol}",
        name="protocol",
        title="Protocol items",
        description="One protocol (id, name or type) with its items",
        mime_type=JSON,
    )
    async def protocol_resource(protocol: str) -> str:
        return await _resource(read.lookup(current_workspace(), "protocols", protocol))

    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        ws = CURRENT_WORKSPACE.get()
        values = await candidates(ws, argument.name, ref) if ws is not None else []
        prefix = argument.value.casefold()
        hits = [v for v in values if v.casefold().startswith(prefix)]
        hits += [v for v in values if prefix in v.casefold() and v not in hits]
        return Completion(values=hits[:100], total=len(hits), has_more=len(hits) > 100)

    # The SDK's `completion()` decorator is untyped; keep our handler's signature.
    register: Callable[[CompletionHandler], CompletionHandler] = mcp.completion()  # type: ignore[no-untyped-call]
    register(complete)


def _register_list(mcp: MCPServer, list_name: str, title: str, description: str) -> None:
    async def read_list() -> str:
        return await _resource(read.lookup(current_workspace(), list_name))

    mcp.resource(
        f"tradavity://{list_name}",
        name=list_name,
        title=title,
        description=description,
        mime_type=JSON,
    )(read_list)


async def candidates(
    ws: Workspace, argument: str, ref: PromptReference | ResourceTemplateReference
) -> list[str]:
    """Completion values for an argument name, whatever prompt or template asks."""
    try:
        if argument == "account":
            return [a.account_name for a in await ws.ref.accounts() if not a.is_archived]
        if argument in {"tag", "tags"}:
            return sorted(t.name for t in await ws.ref.tags())
        if argument == "protocol":
            return [p.name for p in await ws.ref.protocols()]
        if argument == "range":
            return list(read.RANGES)
        if argument == "kind":
            return list(read.STATS_KINDS)
        if argument == "name" and isinstance(ref, ResourceTemplateReference):
            return list(read.CATALOG)
        if argument == "symbol":
            data = await ws.api.catalog("instruments")
            rows = data.get("instruments", data) if isinstance(data, dict) else data
            return sorted({str(r.get("symbol")) for r in rows or [] if isinstance(r, dict)})
        if argument == "strategy":
            return [s.name for s in await ws.ref.strategies()]
    except TradavityError:
        return []
    return []


def _trades_text(data: dict[str, Any]) -> str:
    rows = data.get("trades", [])
    if not rows:
        return "No trades match."
    lines = []
    for r in rows:
        pnl = r.get("net_pnl")
        pnl_text = f"{pnl:+,.2f}" if isinstance(pnl, int | float) else "?"
        extra = " ".join(str(r[k]) for k in ("grade", "strategy", "setup", "top_tag") if r.get(k))
        lines.append(
            f"#{r.get('trade_number')} {str(r.get('trade_date', ''))[:16]} {r.get('symbol')} "
            f"{r.get('direction')} {pnl_text} {r.get('account') or ''} {extra}".rstrip()
        )
    if data.get("note"):
        lines.append(f"({data['note']})")
    if data.get("next_cursor"):
        lines.append(f"(more: cursor={data['next_cursor']})")
    return "\n".join(lines)


def _calendar_image(data: dict[str, Any]) -> CallToolResult:
    # Pillow loads only when a picture is drawn.
    from ..calendar_png import render_month  # noqa: PLC0415

    days = {}
    for row in data.get("days", []):
        try:
            days[date.fromisoformat(str(row["date"])[:10])] = float(row.get("net_pnl", 0))
        except (KeyError, ValueError, TypeError):
            continue
    months = sorted({(d.year, d.month) for d in days}) or [(date.today().year, date.today().month)]
    year, month = months[-1]
    total = sum(v for d, v in days.items() if (d.year, d.month) == (year, month))
    title = f"{date(year, month, 1):%B %Y}  net {total:+,.2f}"
    png = render_month(year, month, days, title=title)
    return CallToolResult(
        content=[
            ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png"),
            TextContent(type="text", text=title),
        ],
        structured_content={"year": year, "month": month, "net_pnl": round(total, 2)},
    )
