"""The journaling tools: thin MCP adapters over `_journal` and `_sync`.

Each adapter names the call, runs it through the ledger (`WriteCall.run`), turns the
outcome into a structured result with a one-line text, and turns every anticipated
failure into a `ToolError` whose message tells the model how to fix the call.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve
from mcp.types import CallToolResult, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..errors import TradavityError
from ..models import AssetType, Bias, ExitType, Grade, MarketCondition, Session, Volume
from . import _journal
from ._calls import UserError, describe_error, resolve_call_id
from ._files import dirs_from_roots
from ._sync import Progress
from ._workspace import Workspace
from .results import (
    ArchiveResult,
    JournalResult,
    ProtocolResult,
    ScreenshotResult,
    SyncRunResult,
    TagResult,
    TradeResult,
    TradeSummary,
)

__all__ = ["WRITE_TOOLS", "ToolEnv", "register_write_tools"]

R = TypeVar("R", bound=BaseModel)

#: tool -> scope it needs to be listed.
WRITE_TOOLS: dict[str, str] = {
    "create_trade": "write:trades",
    "journal_trade": "write:trades",
    "update_trade": "write:trades",
    "archive_trade": "write:trades",
    "tag_trade": "write:tags",
    "attach_screenshot": "write:screenshots",
    "record_protocol_response": "write:protocols",
    "trigger_sync": "write:autosync",
}

_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
_DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
)

NOTES = {
    "replayed": "This exact call ran before; its recorded result is returned, nothing was sent.",
    "suspected_duplicate": (
        "The same call arrived twice; the first result is returned and nothing new was "
        "written. Pass allow_duplicate=true if a second identical entry is really wanted."
    ),
    "pending": (
        "Tradavity has not confirmed this write yet. It is saved and will be finished "
        "automatically with the same idempotency key (it cannot be written twice). Call "
        "again with the same arguments to check."
    ),
}


class ToolEnv:
    """What adapters need from the server: the workspace for a request, and settings."""

    def __init__(
        self,
        workspace: Callable[[Context], Workspace],
        allowed_dirs: tuple[Path, ...],
        stdio: bool,
    ) -> None:
        self.workspace = workspace
        self.allowed_dirs = allowed_dirs
        self.stdio = stdio


def _meta(ctx: Context) -> dict[str, Any]:
    meta = ctx.request_context.meta
    return dict(meta) if meta else {}


def _text_result(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", exclude_none=True),
    )


async def _run(
    env: ToolEnv,
    ctx: Context,
    tool: str,
    arguments: dict[str, Any],
    *,
    allowed: list[Path] | None = None,
    progress: Progress | None = None,
    allow_duplicate: bool = False,
    scope: str = "",
) -> tuple[str, dict[str, Any]]:
    """Name the call, then run, replay or resume it from its recorded arguments."""
    arguments = _compact(arguments)
    ws = env.workspace(ctx)
    call_id = resolve_call_id(_meta(ctx), ws.principal, tool, arguments, scope=scope)
    call = ws.call(tool, call_id, arguments)
    body = _journal.body_for(tool, arguments, allowed_dirs=allowed, progress=progress)
    try:
        return await call.run(lambda c: body(ws, c), allow_duplicate=allow_duplicate)
    except (UserError, TradavityError) as exc:
        raise ToolError(describe_error(exc)) from None


def _compact(arguments: dict[str, Any]) -> dict[str, Any]:
    """Drop unset arguments so `f(x=1)` and `f(x=1, y=None)` are the same call."""
    return {k: v for k, v in arguments.items() if v is not None and v != [] and v is not False}


def _note(outcome: str, extra: str | None = None) -> str | None:
    parts = [p for p in (NOTES.get(outcome), extra) if p]
    return " ".join(parts) or None


def _summary(data: dict[str, Any]) -> TradeSummary | None:
    trade = data.get("trade")
    return TradeSummary.model_validate(trade) if isinstance(trade, dict) else None


# --- argument types ----------------------------------------------------------------------

TradeNumber = Annotated[int, Field(ge=1, description="Trade number (#) as shown in the journal")]
AccountRef = Annotated[
    str | int | None, Field(description="Account name or id; optional with one active account")
]
Money = Annotated[float | None, Field(description="In account currency")]


def register_write_tools(mcp: MCPServer, env: ToolEnv) -> None:
    """Register every journaling tool on `mcp`."""

    @mcp.tool(title="Create trade", annotations=_WRITE)
    async def create_trade(
        ctx: Context,
        symbol: Annotated[str, Field(description="e.g. MNQ, ES, EURUSD")],
        direction: Literal["long", "short"],
        net_pnl: Annotated[float, Field(description="Net P&L after fees")],
        trade_date: Annotated[
            str,
            Field(description="Entry time, ISO 8601; no offset = user's timezone; or 'now'"),
        ],
        account: AccountRef = None,
        quantity: float | None = None,
        fees: Money = None,
        gross_pnl: Annotated[float | None, Field(description="Default net_pnl + fees")] = None,
        multiplier: float | None = None,
        asset_type: AssetType | None = None,
        asset_config: Annotated[
            dict[str, Any] | None,
            Field(
                description="forex {lot_type,pip_value}; "
                "options {option_type,strike_price,expiration}"
            ),
        ] = None,
        sl_price: float | None = None,
        tp_price: float | None = None,
        total_points: float | None = None,
        rr_expected: float | None = None,
        rr_realized: float | None = None,
        holding_time: Annotated[int | None, Field(description="Seconds")] = None,
        market_condition: MarketCondition | None = None,
        trading_session: Session | None = None,
        trade_quality_grade: Annotated[
            Grade | None, Field(description="Read back as 'grade'")
        ] = None,
        volume: Volume | None = None,
        emotional_state: Annotated[
            str | None, Field(description="From the emotions catalog")
        ] = None,
        bias: Bias | None = None,
        confidence_level: Annotated[int | None, Field(description="1-10")] = None,
        exit_type: ExitType | None = None,
        setup_quality: str | None = None,
        news_events: str | None = None,
        strategy: Annotated[str | int | None, Field(description="Name or id")] = None,
        setup: Annotated[str | int | None, Field(description="Name or id")] = None,
        thought_process: str | None = None,
        mistakes_made: str | None = None,
        learning_notes: str | None = None,
        general_notes: str | None = None,
        allow_duplicate: Annotated[
            bool, Field(description="Journal an identical trade again on purpose")
        ] = False,
    ) -> Annotated[CallToolResult, TradeResult]:
        """Journal one trade. Returns its trade number. Prefer journal_trade to add tags,
        fills, a screenshot or a checklist in the same call."""
        given = locals()
        fields = {k: given[k] for k in trade_fields if given.get(k) is not None}
        outcome, data = await _run(
            env, ctx, "create_trade", fields, allow_duplicate=allow_duplicate
        )
        summary = _summary(data)
        result = _trade_result(outcome, summary, _note(outcome))
        head = {"done": "Journaled", "replayed": "Already journaled"}.get(outcome, "Trade")
        text = f"{head} trade {summary.line()}." if summary else "Trade not confirmed yet."
        return _text_result(result, _join(text, result.note))

    trade_fields = tuple(
        name
        for name in inspect.signature(create_trade).parameters
        if name not in {"ctx", "allow_duplicate"}
    )

    @mcp.tool(title="Journal trade (all-in-one)", annotations=_WRITE)
    async def journal_trade(
        ctx: Context,
        trade: Annotated[
            dict[str, Any], Field(description="create_trade's arguments (symbol, direction, ...)")
        ],
        tags: Annotated[list[str | int], Field(description="Tag names or ids")] = [],  # noqa: B006
        create_missing_tags: bool = False,
        executions: Annotated[
            dict[str, Any] | None,
            Field(description="{entries:[{price,quantity,execution_time?}], exits:[...]}"),
        ] = None,
        screenshot: Annotated[
            dict[str, Any] | None,
            Field(description="{path} or {data (base64), filename}, optional label"),
        ] = None,
        checklist: Annotated[
            dict[str, Any] | None,
            Field(description="{protocol, answers, status?}, as record_protocol_response"),
        ] = None,
        allow_duplicate: bool = False,
        roots: Annotated[Any, Resolve(_roots_for_journal)] = None,
    ) -> Annotated[CallToolResult, JournalResult]:
        """Journal a trade with its tags, fills, chart screenshot and checklist in one call.
        Each part is written once; calling again with the same arguments finishes what is
        missing. Reports each step's outcome."""
        unknown = set(trade) - set(trade_fields)
        if unknown:
            raise ToolError(
                f"trade has unknown fields {sorted(unknown)}; it takes create_trade's arguments"
            )
        arguments = {
            "trade": trade,
            "tags": tags,
            "create_missing_tags": create_missing_tags,
            "executions": executions,
            "screenshot": screenshot,
            "checklist": checklist,
        }
        outcome, data = await _run(
            env,
            ctx,
            "journal_trade",
            arguments,
            allowed=_allowed_dirs(env, roots),
            allow_duplicate=allow_duplicate,
        )
        steps: dict[str, str] = data.get("steps", {})
        failed = [s for s, v in steps.items() if v.startswith("failed")]
        final = "partial" if failed and outcome == "done" else outcome
        summary = _summary(data)
        hint = None
        if failed and summary:
            hint = (
                f"Trade #{summary.trade_number} exists; fix the failed parts with tag_trade, "
                "attach_screenshot or record_protocol_response on that trade number."
            )
        result = JournalResult(
            outcome=_outcome(final),
            steps=steps,
            note=_note(outcome, hint),
            **(summary.model_dump() if summary else {}),
        )
        lines = [f"Trade {summary.line()}." if summary else "Trade not confirmed yet."]
        lines += [f"- {s}: {v}" for s, v in steps.items()]
        if outcome == "pending":
            lines.append(f"- pending at step: {data.get('pending_step')}")
        return _text_result(result, _join("\n".join(lines), result.note))

    @mcp.tool(title="Tag trade", annotations=_WRITE)
    async def tag_trade(
        ctx: Context,
        trade_number: TradeNumber,
        tags: Annotated[list[str | int], Field(description="Tag names (any case) or ids")],
        mode: Literal["add", "remove", "replace"] = "add",
        create_missing: Annotated[bool, Field(description="Create unknown tag names")] = False,
        category: Annotated[
            str | None, Field(description="Category for created tags (made if new)")
        ] = None,
    ) -> Annotated[CallToolResult, TagResult]:
        """Add, remove or replace tags on a trade."""
        arguments = {
            "trade_number": trade_number,
            "tags": tags,
            "mode": mode,
            "create_missing": create_missing,
            "category": category,
        }
        outcome, data = await _run(env, ctx, "tag_trade", arguments)
        result = TagResult(
            outcome=_outcome(outcome),
            trade_number=trade_number,
            tags=data.get("tags", []),
            created=data.get("created", []),
            note=_note(outcome),
        )
        text = f"Trade #{trade_number} tags: {', '.join(result.tags) or '(none)'}."
        if result.created:
            text += f" Created: {', '.join(result.created)}."
        return _text_result(result, _join(text, result.note))

    @mcp.tool(title="Attach screenshot", annotations=_WRITE)
    async def attach_screenshot(
        ctx: Context,
        trade_number: TradeNumber,
        path: Annotated[str | None, Field(description="Local PNG/JPEG/PDF (stdio only)")] = None,
        data: Annotated[str | None, Field(description="Base64 file content")] = None,
        filename: Annotated[str | None, Field(description="Needed with data")] = None,
        label: Annotated[str | None, Field(description="Caption, max 100 chars")] = None,
        roots: Annotated[Any, Resolve(_roots_for_path)] = None,
    ) -> Annotated[CallToolResult, ScreenshotResult]:
        """Attach a chart screenshot (PNG, JPEG or PDF, max 10 MB) to a trade."""
        arguments = {
            "trade_number": trade_number,
            "path": path,
            "data": data,
            "filename": filename,
            "label": label,
        }
        outcome, out = await _run(
            env, ctx, "attach_screenshot", arguments, allowed=_allowed_dirs(env, roots)
        )
        result = ScreenshotResult(
            outcome=_outcome(outcome),
            trade_number=trade_number,
            screenshot_id=out.get("screenshot_id"),
            file_type=out.get("file_type"),
            label=out.get("label"),
            note=_note(outcome),
        )
        text = (
            f"Screenshot {result.screenshot_id} attached to trade #{trade_number}."
            if result.screenshot_id
            else f"Screenshot for trade #{trade_number} not confirmed yet."
        )
        return _text_result(result, _join(text, result.note))

    @mcp.tool(title="Record checklist answers", annotations=_WRITE)
    async def record_protocol_response(
        ctx: Context,
        protocol: Annotated[
            str | int, Field(description="Protocol id, name or type (pre_trade, end_of_day, ...)")
        ],
        answers: Annotated[
            dict[str, Any],
            Field(
                description="Item label or id -> answer (true/false, yes/no/na, 1-5, number, "
                "option, text); '*' answers every yes/no item"
            ),
        ],
        trade_number: Annotated[int | None, Field(description="Link to this trade")] = None,
        status: Literal["completed", "draft"] = "completed",
    ) -> Annotated[CallToolResult, ProtocolResult]:
        """Record a protocol (checklist/review) response, optionally linked to a trade."""
        arguments = {
            "protocol": protocol,
            "answers": answers,
            "trade_number": trade_number,
            "status": status,
        }
        # Without a trade, the same answers on another day are a new response.
        day = "" if trade_number else datetime.now(UTC).date().isoformat()
        outcome, out = await _run(env, ctx, "record_protocol_response", arguments, scope=day)
        result = ProtocolResult(
            outcome=_outcome(outcome),
            protocol=str(out.get("protocol", protocol)),
            response_id=out.get("response_id"),
            status=out.get("status"),
            trade_number=trade_number,
            answered=int(out.get("answered", 0)),
            note=_note(outcome),
        )
        link = f" for trade #{trade_number}" if trade_number else ""
        text = (
            f"Recorded '{result.protocol}' ({result.status}, {result.answered} answers){link}."
            if result.response_id
            else f"'{result.protocol}' response{link} not confirmed yet."
        )
        return _text_result(result, _join(text, result.note))

    @mcp.tool(title="Sync broker", annotations=_WRITE)
    async def trigger_sync(
        ctx: Context,
        connection: Annotated[
            str | int | None,
            Field(description="Connection id, broker or account name; optional with one"),
        ] = None,
        wait: Annotated[
            bool, Field(description="Wait out a cooldown (max 60 s), then sync")
        ] = False,
    ) -> Annotated[CallToolResult, SyncRunResult]:
        """Import new trades from the broker now (one manual sync per connection every 20 s)."""
        arguments = {"connection": connection, "wait": wait}

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        # A sync repeated later is a new sync: derived ids are per invocation.
        outcome, out = await _run(
            env, ctx, "trigger_sync", arguments, progress=progress, scope=str(time.time_ns())
        )
        if outcome == "pending":
            raise ToolError(
                "Tradavity did not answer the sync request; it may still run. "
                "Check sync history shortly."
            )
        result = SyncRunResult.model_validate(
            {"outcome": outcome, **{k: v for k, v in out.items() if v is not None}}
        )
        if outcome == "cooling_down":
            text = result.message or "cooling down"
        else:
            text = (
                f"Synced {result.broker}: {result.imported} imported, {result.skipped} skipped "
                f"of {result.total_fetched} fetched."
            )
            if result.errors:
                text += " Errors: " + "; ".join(result.errors)
        return _text_result(result, text)

    @mcp.tool(title="Update trade", annotations=_WRITE)
    async def update_trade(
        ctx: Context,
        trade_number: TradeNumber,
        changes: Annotated[
            dict[str, Any],
            Field(
                description="Any of: trade_quality_grade, emotional_state, bias, "
                "confidence_level, market_condition, trading_session, exit_type, "
                "setup_quality, news_events, volume, strategy, setup, sl_price, tp_price, "
                "thought_process, mistakes_made, learning_notes, general_notes (null clears "
                "sl/tp). Same values as create_trade."
            ),
        ],
    ) -> Annotated[CallToolResult, TradeResult]:
        """Change a trade's qualitative fields. Symbol, date, direction and P&L cannot be
        edited: archive the trade and create a new one."""
        arguments = {"trade_number": trade_number, "changes": changes}
        outcome, data = await _run(env, ctx, "update_trade", arguments)
        summary = _summary(data)
        result = _trade_result(outcome, summary, _note(outcome))
        text = f"Updated trade {summary.line()}." if summary else "Update not confirmed yet."
        return _text_result(result, _join(text, result.note))

    @mcp.tool(title="Archive trade", annotations=_DESTRUCTIVE)
    async def archive_trade(
        ctx: Context,
        trade_number: TradeNumber,
        including_copies: Annotated[
            bool, Field(description="Also archive its copies (only on a copy source)")
        ] = False,
        confirmed: Annotated[Any, Resolve(_confirm_archive)] = None,
    ) -> Annotated[CallToolResult, ArchiveResult]:
        """Archive (soft-delete) a trade; it can be restored in Tradavity for 30 days."""
        if isinstance(confirmed, ArchiveConfirmation) and not confirmed.confirm:
            raise ToolError(
                f"the user did not confirm archiving trade #{trade_number}; nothing changed"
            )
        arguments = {"trade_number": trade_number, "including_copies": including_copies}
        outcome, data = await _run(env, ctx, "archive_trade", arguments)
        result = ArchiveResult(
            outcome=_outcome(outcome),
            trade_number=trade_number,
            archived=int(data.get("archived", 0)),
            note=_note(outcome),
        )
        text = f"Archived trade #{trade_number}"
        if result.archived > 1:
            text += f" and {result.archived - 1} copies"
        return _text_result(result, _join(text + ".", result.note))


# --- resolvers -----------------------------------------------------------------------------


class ArchiveConfirmation(BaseModel):
    confirm: bool = Field(description="Archive this trade?")


def _confirm_archive(ctx: Context, trade_number: int) -> Any:
    """Ask the user, where the client can show a form; otherwise the host's own
    confirmation (the tool is marked destructive) stands."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    return Elicit(
        f"Archive trade #{trade_number}? It can be restored for 30 days.", ArchiveConfirmation
    )


def _roots_if(ctx: Context, wants_path: bool) -> Any:
    """Ask for the client's roots only when a local path is involved and roots exist."""
    caps = ctx.client_capabilities
    if not wants_path or caps is None or caps.roots is None:
        return None
    return ListRoots()


def _roots_for_path(ctx: Context, path: str | None = None) -> Any:
    return _roots_if(ctx, path is not None)


def _roots_for_journal(ctx: Context, screenshot: dict[str, Any] | None = None) -> Any:
    return _roots_if(ctx, isinstance(screenshot, dict) and "path" in screenshot)


def _allowed_dirs(env: ToolEnv, roots: Any) -> list[Path] | None:
    """Configured directories plus the client's roots; None where paths are not allowed."""
    if not env.stdio:
        return None
    dirs = list(env.allowed_dirs)
    if isinstance(roots, ListRootsResult):
        dirs += dirs_from_roots([str(r.uri) for r in roots.roots])
    return dirs


def _trade_result(outcome: str, summary: TradeSummary | None, note: str | None) -> TradeResult:
    fields = summary.model_dump() if summary else {}
    return TradeResult(outcome=_outcome(outcome), note=note, **fields)


def _outcome(value: str) -> Any:
    return value


def _join(text: str, note: str | None) -> str:
    return f"{text}\n{note}" if note else text
