"""Around every request: make the caller's workspace current, hide the tools its key's
scopes cannot use (refusing them if a host calls one anyway), send compact schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, ListToolsResult, TextContent

from .auth import Workspaces
from .errors import UserError
from .schema import compact_tool
from .sync.notifier import SyncNotifier
from .workspace import CURRENT_WORKSPACE, Workspace

__all__ = ["AppState", "RequestScope"]


@dataclass
class AppState:
    """What the lifespan yields: the workspace(s) requests run in."""

    default: Workspace | None = None
    registry: Workspaces | None = None
    workspaces_seen: list[Workspace] = field(default_factory=list)
    #: The write ledger every workspace here shares (upload links are taken through it).
    ledger: Any = None

    def workspace_for_request(self) -> Workspace:
        """The calling user's workspace: per bearer key in per-user mode, else the one."""
        if self.registry is not None:
            token = get_access_token()
            ws = self.registry.get(token.token) if token is not None else None
            if ws is None:
                raise UserError("not authenticated: send your Tradavity API key as the bearer")
            return ws
        if self.default is None:
            raise UserError("the server has no API key configured")
        return self.default

    def workspaces(self) -> list[Workspace]:
        out = [self.default] if self.default is not None else []
        return out + (self.registry.all() if self.registry is not None else [])


class RequestScope:
    """The request middleware (resources and completions get no Context, so they find
    the workspace through `workspace.current_workspace()`)."""

    def __init__(self, *, output_schemas: bool, notifier: SyncNotifier) -> None:
        self.output_schemas = output_schemas
        self.notifier = notifier

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        state = ctx.lifespan_context
        if not isinstance(state, AppState):
            return await call_next(ctx)
        try:
            ws = state.workspace_for_request()
        except UserError:
            return await call_next(ctx)
        self.notifier.watch(ws)
        token = CURRENT_WORKSPACE.set(ws)
        try:
            return await self._handle(ws, ctx, call_next)
        finally:
            CURRENT_WORKSPACE.reset(token)

    async def _handle(
        self, ws: Workspace, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method not in {"tools/list", "tools/call"}:
            return await call_next(ctx)
        await ws.wait_for_scopes()
        if ctx.method == "tools/call" and ws.setup_problem is not None:
            return CallToolResult(
                content=[TextContent(type="text", text=ws.setup_problem)], is_error=True
            )
        from .tools import TOOL_SCOPES  # noqa: PLC0415 (with the tools, on first use)

        scopes = ws.scopes
        hidden = set() if scopes is None else {t for t, s in TOOL_SCOPES.items() if s not in scopes}
        if ctx.method == "tools/call" and hidden:
            name = (ctx.params or {}).get("name")
            if name in hidden:
                return CallToolResult(
                    content=[
                        TextContent(
                            type="text",
                            text=f"{name} needs the '{TOOL_SCOPES[name]}' scope, which this "
                            "API key lacks. Ask the user to grant it in Tradavity Settings -> API.",
                        )
                    ],
                    is_error=True,
                )
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            result = _shape_tools_list(result, hidden, output_schemas=self.output_schemas)
            if scopes is not None:
                result = _hide_values(result, scopes)
        return result


def _hide_values(result: HandlerResult, scopes: frozenset[str]) -> HandlerResult:
    """Drop the argument values the key's scopes cannot use from their enums (get_stats'
    `by-checklist` without `read:protocols`); a call with one is refused in words."""
    from .insights import VALUE_SCOPES  # noqa: PLC0415 (with the tools, on first use)

    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return result
    tools = []
    for listed in result["tools"]:
        tool = listed
        for arg, needs in VALUE_SCOPES.get(tool.get("name"), {}).items():
            prop = tool.get("inputSchema", {}).get("properties", {}).get(arg)
            if isinstance(prop, dict) and isinstance(prop.get("enum"), list):
                enum = [v for v in prop["enum"] if v not in needs or needs[v] in scopes]
                properties = {**tool["inputSchema"]["properties"], arg: {**prop, "enum": enum}}
                tool = {**tool, "inputSchema": {**tool["inputSchema"], "properties": properties}}
        tools.append(tool)
    return {**result, "tools": tools}


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
