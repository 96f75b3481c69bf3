"""MCP Apps: the interactive views some hosts show beside a tool's result.

Three views, built from `apps/` at the top of the repository into one self-contained
HTML file each (`views/`, committed, so the wheel needs no Node), served as `ui://`
resources of type `text/html;profile=mcp-app` with a CSP that allows no outside origin:

- `ui://tradavity/calendar.html` for `get_calendar`: a grid per month, week and month
  totals, a day's trades on a click (the view calls `find_trades` through the host);
- `ui://tradavity/dashboard.html` for `get_stats`: totals and decisions, by-symbol and
  by-strategy bars, an equity curve (it calls `get_stats` and `get_calendar`);
- `ui://tradavity/journal.html` for `review_trade`: the trade as the model filled it in,
  for the trader to correct and submit; each submit is a `journal_trade` call whose id
  (`_meta["com.tradavity/callId"]`) is the form's and a digest of what it sends, so the
  same submit again replays, and a correction after a partial carries on that same
  trade (`ledger.form_of`: at any age), never a second one.

Tools link to their view with `_meta.ui.resourceUri` and the older flat
`ui/resourceUri` (`ui_meta`), and return the same text and structured content as on any
host. `review_trade` writes nothing and is listed only to clients that negotiated Apps
(`AppsOnly`): elsewhere the model journals with `journal_trade` directly, as before.
"""

from __future__ import annotations

import inspect
import uuid
from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ListToolsResult, TextContent, ToolAnnotations
from pydantic import ValidationError

from ...api.errors import TradavityError
from ..deferred import add_tool
from ..errors import UserError
from ..workspace import CURRENT_WORKSPACE

__all__ = [
    "APPS",
    "REVIEW_TOOL",
    "AppsOnly",
    "View",
    "register_apps",
    "review_trade",
    "ui_meta",
    "view_html",
]


class View:
    """One app: its built file, its `ui://` address and how a host lists it."""

    def __init__(self, file: str, title: str, description: str) -> None:
        self.file = file
        self.uri = f"ui://tradavity/{file}.html"
        self.title = title
        self.description = description


APPS: dict[str, View] = {
    "calendar": View(
        "calendar", "P&L calendar", "Interactive P&L calendar shown with get_calendar"
    ),
    "dashboard": View(
        "dashboard", "Stats dashboard", "Interactive stats dashboard shown with get_stats"
    ),
    "journal": View(
        "journal", "Journal form", "Form to check a trade before journaling it (review_trade)"
    ),
}

REVIEW_TOOL = "review_trade"
#: The scope journal_trade needs (`writes.table`), so the form's submit can succeed.
JOURNAL_SCOPE = "write:trades"

#: The view each tool's result is shown in, on hosts that render Apps.
TOOL_VIEWS: dict[str, View] = {
    "get_calendar": APPS["calendar"],
    "get_stats": APPS["dashboard"],
    REVIEW_TOOL: APPS["journal"],
}

#: The older, flat key some hosts read for a tool's view.
UI_URI_KEY = "ui/resourceUri"

#: No origin outside the view itself: nothing is fetched, connected to or framed.
STRICT_CSP = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[])


@cache
def view_html(name: str) -> str:
    """The built HTML of one app (from the package, so the wheel carries it)."""
    return files(__package__).joinpath("views", f"{name}.html").read_text("utf-8")


def ui_meta(tool: str) -> dict[str, Any] | None:
    """The `_meta` linking a tool to its view (None for tools without one)."""
    view = TOOL_VIEWS.get(tool)
    if view is None:
        return None
    return {"ui": {"resourceUri": view.uri}, UI_URI_KEY: view.uri}


REVIEW_DESCRIPTION = (
    "Show a trade the user described in a form, for them to check and correct before it "
    "is journaled. Same arguments as journal_trade. Nothing is written by this call; the "
    "user's submit journals it once. Do not call journal_trade for the same trade."
)


async def review_trade(**given: Any) -> CallToolResult:
    """The draft, checked as journal_trade would check it, and the form's call id.

    Its parameters are journal_trade's (`review_parameters`), so the form is filled
    from the same field-by-field schema the model reads for journal_trade."""
    # Imported on first use: the write models are not needed to start the server.
    from ...api.models import plain_validation_message  # noqa: PLC0415
    from ..writes.args import JournalTradeArgs  # noqa: PLC0415

    parts = {k: v for k, v in given.items() if v is not None}
    try:
        args = JournalTradeArgs.model_validate(
            {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in parts.items()}
        )
    except ValidationError as exc:
        raise ToolError(f"invalid arguments: {plain_validation_message(exc)}") from None
    draft = args.model_dump(mode="json", exclude_none=True, exclude={"allow_duplicate"})
    t = args.trade
    text = (
        f"Shown to the user for checking: {t.symbol} {t.direction} net {t.net_pnl:+,.2f} "
        f"on {await _when(t.trade_date)}. Nothing is written yet; the trade is journaled "
        "once when the user submits the form. Do not call journal_trade for it."
    )
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content={
            "status": "awaiting_user",
            # One id per form: the form's submits (a correction after a partial too)
            # continue this call.
            "call_id": f"form-{uuid.uuid4().hex}",
            "draft": draft,
        },
    )


def _typed_review_trade() -> None:
    """Give `review_trade` journal_trade's parameters (at registration: the models are
    imported on first use, not at start)."""
    from ..tools.write import model_parameters  # noqa: PLC0415
    from ..writes.args import JournalTradeArgs  # noqa: PLC0415

    params = model_parameters(JournalTradeArgs, exclude=frozenset({"allow_duplicate"}))
    returns = CallToolResult
    review_trade.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    review_trade.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}


async def _when(trade_date: str) -> str:
    """The draft's time as the user reads it (`now` resolved, the zone marked); a time in
    the future is refused as journal_trade would refuse it."""
    ws = CURRENT_WORKSPACE.get()
    if ws is None:
        return trade_date
    try:
        clock = await ws.local_clock(strict=True)
        return clock.text(clock.trade_time(trade_date))
    except UserError as exc:
        raise ToolError(str(exc)) from None
    except TradavityError:
        return f"{trade_date} (the user's time)"


def register_apps(mcp: MCPServer[Any], *, read_only: bool) -> None:
    """The views and `review_trade`, added on first use with the other tools (`deferred`);
    the server starts with the extension alone (`Apps()`), which is what it advertises."""
    apps = _apps(read_only=read_only)
    for resource in apps.resources():
        mcp.add_resource(resource.resource)
    for tool in apps.tools():
        add_tool(mcp, tool.fn, meta=tool.meta, **tool.kwargs)


def _apps(*, read_only: bool) -> Apps:
    """The Apps extension: the three views, and `review_trade` unless read-only."""
    apps = Apps()
    for name, view in APPS.items():
        if read_only and name == "journal":
            continue
        apps.add_html_resource(
            view.uri,
            view_html(view.file),
            name=f"{view.file}-app",
            title=view.title,
            description=view.description,
            csp=STRICT_CSP,
            prefers_border=False,
        )
    if not read_only:
        _typed_review_trade()
        apps.tool(
            resource_uri=APPS["journal"].uri,
            name=REVIEW_TOOL,
            title="Review trade before journaling",
            description=REVIEW_DESCRIPTION,
            annotations=ToolAnnotations(
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
            structured_output=False,
            meta={UI_URI_KEY: APPS["journal"].uri},
        )(review_trade)
    return apps


class AppsOnly:
    """Middleware: what only a client that negotiated MCP Apps is shown.

    Such a client sees each tool's link to its view, and `review_trade` when its key may
    journal. Any other client gets tools/list as before: no `_meta.ui` (every character
    of tools/list is paid for in every conversation, and it cannot show a view) and no
    `review_trade` (a form it cannot show; the model journals with journal_trade).
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method not in {"tools/list", "tools/call"}:
            return await call_next(ctx)
        apps = client_supports_apps(ctx)
        review = apps and _may_journal()
        if ctx.method == "tools/call":
            if not review and (ctx.params or {}).get("name") == REVIEW_TOOL:
                return CallToolResult(
                    content=[
                        TextContent(
                            type="text",
                            text=f"{REVIEW_TOOL} needs a host that shows MCP Apps and a key "
                            "that may journal; call journal_trade instead.",
                        )
                    ],
                    is_error=True,
                )
            return await call_next(ctx)
        result = await call_next(ctx)
        if apps and review:
            return result
        return _shown(result, links=apps)


def _may_journal() -> bool:
    ws = CURRENT_WORKSPACE.get()
    scopes = ws.scopes if ws is not None else None
    return scopes is None or JOURNAL_SCOPE in scopes


def _shown(result: HandlerResult, *, links: bool) -> HandlerResult:
    """tools/list without review_trade, and without the views' links unless `links`."""
    if isinstance(result, ListToolsResult):
        result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return result
    tools = [t for t in result["tools"] if t.get("name") != REVIEW_TOOL]
    return {**result, "tools": tools if links else [_unlinked(t) for t in tools]}


def _unlinked(tool: dict[str, Any]) -> dict[str, Any]:
    meta = tool.get("_meta")
    if not isinstance(meta, dict) or not ({"ui", UI_URI_KEY} & meta.keys()):
        return tool
    rest = {k: v for k, v in meta.items() if k not in {"ui", UI_URI_KEY}}
    out = {k: v for k, v in tool.items() if k != "_meta"}
    return out | {"_meta": rest} if rest else out
