"""The tradavity-mcp MCP server.

`build_server(settings)` returns a ready `MCPServer`. Its lifespan owns the one API
client and the write ledger, learns the key's scopes from `/me` (tools the key cannot
use are not listed), and runs the resumer that finishes pending writes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ListToolsResult, TextContent

from .. import __version__
from ..client import TradavityClient
from ..config import Settings
from ..errors import TradavityError
from ..ledger import Ledger
from ._calls import CallId, WriteCall
from ._journal import Body, body_for
from ._prompts import load_prompts, register_prompts
from ._read_tools import CURRENT_WORKSPACE, READ_TOOLS, register_read_tools
from ._refdata import RefData
from ._schema import compact_tool
from ._workspace import Workspace
from ._write_tools import WRITE_TOOLS, ToolEnv, register_write_tools

#: Every tool and the scope the key needs for it to be listed. The catalog scope is
#: granted to every key.
TOOL_SCOPES = {**{k: v for k, v in READ_TOOLS.items() if v != "read:catalog"}, **WRITE_TOOLS}

__all__ = ["AppState", "build_server", "resume_pending"]

logger = logging.getLogger("tradavity_mcp.server")

INSTRUCTIONS = """\
Tradavity trading journal. To journal a trade the user describes, call journal_trade once \
with the trade plus its tags, fills, screenshot and checklist; use create_trade alone only \
for a bare trade. Times without an offset are in the user's Tradavity timezone. Accounts, \
tags, strategies and checklist items are accepted by name; an unknown name fails with the \
closest matches, so correct it instead of guessing ids. Never invent P&L: ask. A result \
marked replayed or suspected_duplicate means nothing new was written; pending means it \
will be finished automatically."""

#: How often the resumer looks for pending writes.
RESUME_INTERVAL_SECONDS = 30.0


@dataclass
class AppState:
    """What the lifespan yields: the workspace(s) and what the key may do."""

    workspace: Workspace
    scopes: frozenset[str] | None = None
    hidden_tools: set[str] = field(default_factory=set)

    def workspace_for(self, ctx: Context) -> Workspace:
        return self.workspace


def _sandbox_transport(settings: Settings) -> tuple[httpx2.AsyncBaseTransport, str]:
    from ..sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app

    app = create_app(SandboxConfig(db=settings.sandbox_db))
    return SandboxTransport(app), DEMO_KEY


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    stdio: bool = True,
    resume_interval: float = RESUME_INTERVAL_SECONDS,
) -> MCPServer:
    """Build the MCP server for these settings.

    `transport` replaces the network (tests hand in the sandbox). In sandbox mode
    without one, the server talks to an in-process sandbox with the demo key.
    """
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    base_url = settings.base_url
    if transport is None and settings.sandbox:
        transport, api_key = _sandbox_transport(settings)
        base_url = "http://sandbox.local/api/v1"
    if api_key is None:
        raise ValueError("no API key: pass one in settings or use sandbox mode")

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as stack:
            api = TradavityClient(api_key, base_url=base_url, transport=transport)
            stack.push_async_callback(api.aclose)
            ledger = Ledger(settings.state_dir / "ledger.sqlite3")
            stack.callback(ledger.close)
            ws = Workspace(api=api, ledger=ledger, ref=RefData(api))
            state = AppState(workspace=ws)
            try:
                state.scopes = (await ws.ref.me()).scopes
            except TradavityError as exc:
                # Start anyway (the API may be down for a while): list every tool and let
                # each call report what is wrong.
                logger.warning("could not read the key's scopes from /me: %s", exc)
            if state.scopes is not None:
                state.hidden_tools = {t for t, s in TOOL_SCOPES.items() if s not in state.scopes}
            async with anyio.create_task_group() as tg:
                tg.start_soon(_resume_forever, ws, settings, resume_interval)
                try:
                    yield state
                finally:
                    tg.cancel_scope.cancel()

    mcp = MCPServer(
        "tradavity",
        title="Tradavity journal",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://tradavity.com",
        lifespan=lifespan,
        middleware=[_RequestScope(output_schemas=settings.output_schemas)],
    )
    env = ToolEnv(
        workspace=lambda ctx: _state(ctx).workspace_for(ctx),
        allowed_dirs=settings.allowed_dirs,
        stdio=stdio,
    )
    register_read_tools(mcp, env.workspace)
    register_prompts(mcp, load_prompts())
    if not settings.read_only:
        register_write_tools(mcp, env)
    return mcp


def _state(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


class _RequestScope:
    """Around every request: make its workspace current (resources and completions get
    no Context), hide tools the key's scopes cannot use (refusing them if a host calls
    one anyway), and send compact tool schemas."""

    def __init__(self, *, output_schemas: bool) -> None:
        self.output_schemas = output_schemas

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        state = ctx.lifespan_context
        if not isinstance(state, AppState):
            return await call_next(ctx)
        token = CURRENT_WORKSPACE.set(state.workspace)
        try:
            return await self._handle(state, ctx, call_next)
        finally:
            CURRENT_WORKSPACE.reset(token)

    async def _handle(
        self, state: AppState, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        hidden = state.hidden_tools
        if ctx.method == "tools/call" and hidden:
            name = (ctx.params or {}).get("name")
            if name in hidden:
                scope = TOOL_SCOPES[name]
                return CallToolResult(
                    content=[
                        TextContent(
                            type="text",
                            text=f"{name} needs the '{scope}' scope, which this API key lacks. "
                            "Ask the user to grant it in Tradavity Settings -> API.",
                        )
                    ],
                    is_error=True,
                )
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            result = _shape_tools_list(result, hidden, output_schemas=self.output_schemas)
        return result


def _shape_tools_list(
    result: HandlerResult, hidden: set[str], *, output_schemas: bool
) -> HandlerResult:
    if isinstance(result, ListToolsResult):
        result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return result
    tools = [
        compact_tool(t, output_schema=output_schemas)
        for t in result["tools"]
        if t.get("name") not in hidden
    ]
    return {**result, "tools": tools}


async def resume_pending(ws: Workspace, settings: Settings) -> int:
    """Drive every pending call of this workspace to a known outcome. Returns how many
    finished."""
    finished = 0
    for record in ws.ledger.pending_calls(ws.principal):
        try:
            body = body_for(record.tool, record.arguments, allowed_dirs=list(settings.allowed_dirs))
        except KeyError:
            continue
        source: Any = record.id_source
        call = ws.call(record.tool, CallId(record.call_id, source), record.arguments)

        async def run(c: WriteCall, body: Body = body) -> dict[str, Any]:
            return await body(ws, c)

        try:
            outcome, _ = await call.run(run)
        except Exception as exc:  # one bad record must not stop the others
            logger.warning("resuming %s %s failed: %s", record.tool, record.call_id[:16], exc)
            continue
        if outcome != "pending":
            finished += 1
            logger.info("finished pending %s call", record.tool)
    return finished


async def _resume_forever(ws: Workspace, settings: Settings, interval: float) -> None:
    while True:
        try:
            await resume_pending(ws, settings)
        except Exception:  # the resumer must outlive any one failure
            logger.exception("resumer pass failed")
        await anyio.sleep(interval)
