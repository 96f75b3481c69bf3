"""The journaling tools as MCP sees them: one adapter, built from each tool's typed model.

A tool's input schema is its argument model's fields (`_write_args`); the adapter
validates the arguments into the model, names the call (`resolve_call_id`), runs it
through `_writes.invoke`, and renders the outcome as a structured result with a short
text that says exactly what was written. Every anticipated failure becomes a
`ToolError` whose message tells the model how to fix the call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve
from mcp.types import CallToolResult, ListRootsResult, TextContent
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from ...api.models import plain_validation_message
from .. import cpu, insights
from ..errors import reported
from ..files import dirs_from_roots
from ..results import (
    ArchiveResult,
    JournalResult,
    ProtocolResult,
    ScreenshotResult,
    SyncRunResult,
    TagResult,
    TradeResult,
    TradeSummary,
)
from ..when import LocalClock
from ..workspace import current_workspace
from ..writes import table
from ..writes.args import WriteArgs, strict_value
from ..writes.call import resolve_call_id
from ..writes.journal import RunEnv
from ..writes.table import WriteSpec, invoke

__all__ = ["PRESENTATION", "ToolEnv", "adapter", "model_parameters"]


class ToolEnv:
    """What the journaling adapter needs from the server's settings."""

    def __init__(
        self,
        allowed_dirs: tuple[Path, ...],
        stdio: bool,
        output_schemas: bool = False,
        public_url: str | None = None,
    ) -> None:
        self.allowed_dirs = allowed_dirs
        self.stdio = stdio
        #: Where upload links point (HTTP); None: no links.
        self.public_url = public_url
        #: Build output schemas only when they are advertised (they cost start-up time).
        self.output_schemas = output_schemas


# --- what the model reads ----------------------------------------------------------------


def _at(epoch: Any, clock: LocalClock) -> str:
    if not isinstance(epoch, int | float):
        return "moments ago"
    return "at " + clock.text(epoch)


#: In a pending result: the write is finished after a restart only once its user is back.
WAITS_FOR_USER = "waits_for_user"


def _note(outcome: str, data: dict[str, Any], what: str, clock: LocalClock) -> str | None:
    """The sentence that says whether anything was written, and what to do next."""
    when = _at(data.get("twin_created_at"), clock)
    if outcome == "replayed":
        return "This exact call ran before; its recorded result is returned, nothing was sent."
    if outcome == "suspected_duplicate":
        return (
            f"An identical call {when} already wrote this {what}; nothing new was written. "
            f"If the user really wants a second identical {what}, call again with "
            "allow_duplicate: true."
        )
    if outcome == "pending" and data.get("upload_url"):
        return (
            f"Nothing is attached yet. Show the user this link to upload the chart (PNG, "
            f"JPEG or PDF, up to 10 MB), from any device: {data['upload_url']} . It works "
            f"once, until {clock.text(data.get('expires_at'))}; the chart is attached exactly "
            "once when the file lands (see it with get_trade). Do not call again to wait."
        )
    if outcome == "pending" and data.get("pending_step") == "screenshot" and data.get("expires_at"):
        return (
            f"Still waiting for the user to upload the chart through the link given earlier "
            f"(valid until {clock.text(data['expires_at'])}). It is attached once the file lands."
        )
    # The server cannot finish it while the user is away (it keeps no key of theirs).
    after_restart = (
        " If this server restarts before then, it is finished when the user next connects."
        if data.get(WAITS_FOR_USER)
        else ""
    )
    if outcome == "pending" and "twin_created_at" in data:
        return (
            f"An identical call {when} is still being finished; nothing new was written. It "
            f"lands automatically once Tradavity confirms it; do not call again.{after_restart}"
        )
    if outcome == "pending":
        return (
            "Tradavity has not confirmed this write yet. It is saved and will be finished "
            f"automatically, exactly once; do not call again.{after_restart} Check later "
            "with get_trade or find_trades."
        )
    return None


def _text_result(model: BaseModel, *lines: str | None) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(line for line in lines if line))],
        structured_content=model.model_dump(mode="json", exclude_none=True),
    )


def _summary(data: dict[str, Any]) -> TradeSummary | None:
    trade = data.get("trade")
    return TradeSummary.model_validate(trade) if isinstance(trade, dict) else None


def _trade_fields(summary: TradeSummary | None, clock: LocalClock) -> dict[str, Any]:
    """A result's trade fields: the summary, with the trade's time in the user's zone."""
    if summary is None:
        return {}
    local = clock.text(summary.trade_date) if summary.trade_date else None
    return {**summary.model_dump(), "trade_date_local": local}


def _trade_result(
    outcome: str, data: dict[str, Any], note: str | None, clock: LocalClock
) -> TradeResult:
    return TradeResult(outcome=outcome, note=note, **_trade_fields(_summary(data), clock))


def _render_create(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    note = _note(outcome, data, "trade", clock)
    summary = _summary(data)
    head = {"done": "Journaled trade", "replayed": "Already journaled trade"}.get(outcome, "Trade")
    text = f"{head} {summary.line(clock)}." if summary else "Trade not confirmed yet."
    return _text_result(_trade_result(outcome, data, note, clock), text, note)


def _ask_then_finish(number: int | None, protocol: str, to_answer: list[str]) -> str:
    """What to do about a checklist kept as a draft: ask, then finish that response."""
    on = f" on trade #{number}" if number else ""
    return (
        f"The checklist '{protocol}' is saved{on} as a draft with every answer given. "
        f"Ask the trader for: {'; '.join(to_answer)}. Then call record_protocol_response "
        f"with trade_number {number}, protocol '{protocol}' and just those answers: they "
        "complete this same response (one per trade); nothing else is written."
    )


def _render_journal(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    steps: dict[str, str] = data.get("steps", {})
    failed = [s for s, v in steps.items() if v.startswith("failed")]
    final = "partial" if failed and outcome == "done" else outcome
    summary = _summary(data)
    waiting: dict[str, Any] = data.get("checklist") or {}
    to_answer = [str(x) for x in waiting.get("to_answer") or []]
    notes = [_note(outcome, data, "trade", clock)]
    if summary and any(v == "done (earlier)" for v in steps.values()) and outcome == "done":
        notes.append(
            f"This continues trade #{summary.trade_number} from an earlier call: the parts "
            "marked 'done (earlier)' were already written and were kept; only the rest was "
            "written now."
        )
    if failed and summary:
        notes.append(
            f"Trade #{summary.trade_number} exists; call journal_trade again with the same "
            "trade and the corrected parts to finish it (nothing is written twice), or use "
            "tag_trade, attach_screenshot or record_protocol_response on that trade number."
        )
    if to_answer and summary:
        protocol = str(waiting.get("protocol") or "pre_trade")
        notes.append(_ask_then_finish(summary.trade_number, protocol, to_answer))
    note = " ".join(n for n in notes if n) or None
    fields = _trade_fields(summary, clock)
    waiting_upload = summary is None and data.get("upload_url") and data.get("trade_number")
    if waiting_upload:
        fields = {"trade_number": data["trade_number"]}
    result = JournalResult(
        outcome=final,
        steps=steps,
        note=note,
        to_answer=to_answer or None,
        upload_url=data.get("upload_url"),
        **fields,
    )
    lines = [f"Trade {summary.line(clock)}." if summary else "Trade not confirmed yet."]
    if waiting_upload:
        lines = [f"Trade #{data['trade_number']} created; its chart waits for the upload."]
    lines += [f"- {s}: {v}" for s, v in steps.items()]
    if outcome == "pending":
        lines.append(f"- pending at step: {data.get('pending_step')}")
    return _text_result(result, "\n".join(lines), note)


def _render_tags(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    note = _note(outcome, data, "change", clock)
    number = args.trade_number
    result = TagResult(
        outcome=outcome,
        trade_number=number,
        tags=data.get("tags", []),
        created=data.get("created", []),
        note=note,
    )
    if outcome == "pending":
        text = f"Tags of trade #{number} not confirmed yet."
    else:
        text = f"Trade #{number} tags: {', '.join(result.tags) or '(none)'}."
    if result.created:
        text += f" Created: {', '.join(result.created)}."
    return _text_result(result, text, note)


def _render_screenshot(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    note = _note(outcome, data, "screenshot", clock)
    number = args.trade_number
    result = ScreenshotResult(
        outcome=outcome,
        trade_number=number,
        screenshot_id=data.get("screenshot_id"),
        file_type=data.get("file_type"),
        label=data.get("label"),
        file=data.get("file"),
        upload_url=data.get("upload_url"),
        note=note,
    )
    text = (
        f"Screenshot {result.screenshot_id} attached to trade #{number}."
        if result.screenshot_id
        else f"Screenshot for trade #{number} not confirmed yet."
    )
    if result.file:
        text += f" The file taken: {result.file}."
    return _text_result(result, text, note)


def _render_protocol(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    to_answer = [str(x) for x in data.get("to_answer") or []]
    notes = [_note(outcome, data, "checklist response", clock)]
    protocol = str(data.get("protocol", args.protocol))
    if to_answer:
        notes.append(_ask_then_finish(args.trade_number, protocol, to_answer))
    note = " ".join(n for n in notes if n) or None
    result = ProtocolResult(
        outcome=outcome,
        protocol=protocol,
        response_id=data.get("response_id"),
        status=data.get("status"),
        trade_number=args.trade_number,
        answered=int(data.get("answered", 0)),
        to_answer=to_answer or None,
        note=note,
    )
    link = f" for trade #{args.trade_number}" if args.trade_number else ""
    verb = "Updated" if data.get("updated") else "Recorded"
    text = (
        f"{verb} '{result.protocol}' ({result.status}, {result.answered} answers){link}."
        if result.response_id
        else f"'{result.protocol}' response{link} not confirmed yet."
    )
    return _text_result(result, text, note)


def _render_sync(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    if outcome == "pending":
        raise ToolError(
            "Tradavity did not answer the sync request; it may still run. "
            "Check sync_status shortly."
        )
    result = SyncRunResult.model_validate(
        {"outcome": outcome, **{k: v for k, v in data.items() if v is not None}}
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


def _render_update(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    note = _note(outcome, data, "change", clock)
    summary = _summary(data)
    text = f"Updated trade {summary.line(clock)}." if summary else "Update not confirmed yet."
    extra = "; ".join(data.get("notes", []))
    result = _trade_result(outcome, data, note, clock)
    return _text_result(result, text, extra and f"Note: {extra}.", note)


def _render_archive(
    outcome: str, data: dict[str, Any], args: Any, clock: LocalClock
) -> CallToolResult:
    note = _note(outcome, data, "change", clock)
    number = args.trade_number
    result = ArchiveResult(
        outcome=outcome,
        trade_number=number,
        archived=int(data.get("archived", 0)),
        note=note,
    )
    if outcome == "pending":
        text = f"Archiving trade #{number} not confirmed yet."
    else:
        text = f"Archived trade #{number}"
        if result.archived > 1:
            text += f" and {result.archived - 1} copies"
        text += "."
    return _text_result(result, text, note)


# --- resolvers (the SDK calls them before the tool, with the tool's arguments) -------------


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


def _roots_for_path(ctx: Context, path: str | None = None, latest: bool = False) -> Any:
    return _roots_if(ctx, path is not None or latest is True)


def _roots_for_journal(ctx: Context, screenshot: Any = None) -> Any:
    def part(name: str) -> Any:
        if isinstance(screenshot, dict):
            return screenshot.get(name)
        return getattr(screenshot, name, None)

    return _roots_if(ctx, part("path") is not None or part("latest") is True)


# --- the table -----------------------------------------------------------------------------

#: (outcome, data, arguments, the user's clock) -> the result; every time in it local.
Render = Callable[[str, dict[str, Any], Any, LocalClock], CallToolResult]


@dataclass(frozen=True)
class Presentation:
    """How one journaling tool's result looks to the model (its name, title and
    annotations are in `tools.TOOLS`)."""

    result: type[BaseModel]
    render: Render
    #: Extra parameters the SDK resolves before the call (roots, a confirmation).
    resolved: dict[str, Any] = field(default_factory=dict)


PRESENTATION: dict[str, Presentation] = {
    "create_trade": Presentation(TradeResult, _render_create),
    "journal_trade": Presentation(
        JournalResult, _render_journal, resolved={"roots": Resolve(_roots_for_journal)}
    ),
    "tag_trade": Presentation(TagResult, _render_tags),
    "attach_screenshot": Presentation(
        ScreenshotResult, _render_screenshot, resolved={"roots": Resolve(_roots_for_path)}
    ),
    "record_protocol_response": Presentation(ProtocolResult, _render_protocol),
    "trigger_sync": Presentation(SyncRunResult, _render_sync),
    "update_trade": Presentation(TradeResult, _render_update),
    "archive_trade": Presentation(
        ArchiveResult, _render_archive, resolved={"confirmed": Resolve(_confirm_archive)}
    ),
}


# --- the adapter ---------------------------------------------------------------------------


def _allowed_dirs(env: ToolEnv, roots: Any) -> list[Path] | None:
    """Configured directories plus the client's roots; None where paths are not allowed."""
    if not env.stdio:
        return None
    dirs = list(env.allowed_dirs)
    if isinstance(roots, ListRootsResult):
        dirs += dirs_from_roots([str(r.uri) for r in roots.roots])
    return dirs


def _progress(ctx: Context) -> Any:
    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    return progress


def _parse(spec: WriteSpec, arguments: dict[str, Any]) -> WriteArgs:
    try:
        return spec.args.model_validate(arguments)
    except ValidationError as exc:
        raise ToolError(f"invalid arguments: {plain_validation_message(exc)}") from None


#: An argument longer than this (a screenshot's base64) is checked off the event loop:
#: decoding, checking and encoding 3 MB again takes ~40 ms of CPU.
LONG_ARGUMENT = 64 * 1024


async def _parsed(spec: WriteSpec, arguments: dict[str, Any]) -> WriteArgs:
    """`_parse`, in a worker thread (`cpu.run`) when an argument is long."""
    if not any(isinstance(v, str) and len(v) > LONG_ARGUMENT for v in arguments.values()):
        return _parse(spec, arguments)
    return await cpu.run(
        lambda _: _parse(spec, arguments),
        seconds=table.FILE_SECONDS,
        what="Checking the file",
        advice="Nothing was written; call again shortly.",
    )


def adapter(spec: WriteSpec, env: ToolEnv, description: str) -> Callable[..., Any]:
    """A tool function whose signature is the argument model's fields."""
    look = PRESENTATION[spec.name]

    async def tool(ctx: Context, **given: Any) -> CallToolResult:
        roots = given.pop("roots", None)
        confirmed = given.pop("confirmed", None)
        if isinstance(confirmed, ArchiveConfirmation) and not confirmed.confirm:
            raise ToolError(
                f"the user did not confirm archiving trade #{given.get('trade_number')}; "
                "nothing changed"
            )
        with reported():  # a file checked off the loop may be refused past its time
            args = await _parsed(spec, {k: v for k, v in given.items() if v is not None})
        request = ctx.request_context
        identity = resolve_call_id(request.meta, request.params)
        run_env = RunEnv(
            allowed_dirs=_allowed_dirs(env, roots),
            progress=_progress(ctx),
            upload_base=None if env.stdio else env.public_url,
        )
        ws = current_workspace()
        try:
            with reported():
                outcome, data, _ = await invoke(
                    ws,
                    spec,
                    args,
                    identity,
                    run_env,
                    allow_duplicate=bool(getattr(args, "allow_duplicate", False)),
                )
        finally:
            insights.forget(ws)  # what breakdowns read may have changed, even in part
        if outcome == "pending" and not await ws.pending_outlives_restart():
            data = {**data, WAITS_FOR_USER: True}
        return look.render(outcome, data, args, await ws.local_clock())

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    params += model_parameters(spec.args)
    for name, resolver in look.resolved.items():
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[Any, resolver],
                default=None,
            )
        )
    returns = Annotated[CallToolResult, look.result]
    tool.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    tool.__name__ = spec.name
    tool.__doc__ = description
    return tool


def model_parameters(
    model: type[BaseModel], *, exclude: frozenset[str] = frozenset()
) -> list[inspect.Parameter]:
    """A tool's keyword parameters from a model's fields: its schema and its checks are
    the model's (the SDK validates each argument against them before the tool runs)."""
    params = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    info.annotation, *info.metadata, _field(info), _strict(name, info.annotation)
                ],
                default=default,
            )
        )
    return params


def _strict(name: str, annotation: Any) -> BeforeValidator:
    """The model's strictness, applied where the SDK validates the tool's arguments."""
    return BeforeValidator(lambda value: strict_value(name, annotation, value))


def _field(info: Any) -> Any:
    """The parts of a model field that shape the tool's schema: its description."""
    return Field(description=info.description) if info.description else Field()
