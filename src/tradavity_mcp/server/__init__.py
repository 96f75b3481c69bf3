"""The tradavity-mcp MCP server.

`build_server(settings)` returns a ready `MCPServer`. Its lifespan owns the API client
and the write ledger (shared by every connection of the process), learns each key's
scopes from `/me` (tools a key cannot use are not listed), and runs the resumer that
finishes pending writes. `build_http_app(...)` wraps it for the HTTP transports.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx2
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.types import CallToolResult, ListToolsResult, TextContent
from pydantic import AnyHttpUrl, SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..api.client import RetryPolicy, TradavityClient
from ..api.clock import Clock as ApiClock
from ..settings import Settings
from .auth import CLIENT_ADDRESS, PerUserVerifier, ServerTokenVerifier, Workspaces
from .errors import UserError
from .plain import PlainServer
from .prompts import load_prompts, register_prompts
from .refdata import RefData
from .schema import compact_tool
from .sync.stream import sync_stream_endpoint
from .tools.read import CURRENT_WORKSPACE, READ_TOOLS, current_workspace, register_read_tools
from .tools.sync import PrincipalBus, SyncNotifier, refresh_sync, register_sync_tools
from .tools.write import WRITE_TOOLS, ToolEnv, register_write_tools
from .workspace import Workspace
from .writes.journal import RunEnv
from .writes.ledger import Ledger
from .writes.table import resume_pending

__all__ = [
    "AppState",
    "HostedOptions",
    "StreamOptions",
    "build_http_app",
    "build_server",
    "resume_pending",
]

logger = logging.getLogger("tradavity_mcp.server")

#: Every tool and the scope the key needs for it to be listed. The catalog scope is
#: granted to every key.
TOOL_SCOPES = {
    **{k: v for k, v in READ_TOOLS.items() if v != "read:catalog"},
    "sync_status": "read:autosync",
    **WRITE_TOOLS,
}

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
#: How often finished calls past their retention are pruned from the ledger.
PRUNE_INTERVAL_SECONDS = 3600.0
#: How often the sync log is read for runs the platform started itself.
SYNC_POLL_SECONDS = 120.0

AuthMode = Literal["none", "token", "per-user"]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class StreamOptions:
    """The `/sync/stream` heartbeat: its period and the clock that decides it is due."""

    heartbeat_seconds: float = 15.0
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class HostedOptions:
    """How the HTTP transports authenticate (see `_hosted`)."""

    auth: AuthMode = "none"
    #: The shared secret for `auth="token"`.
    token: SecretStr | None = None
    #: Where clients reach this server, for the OAuth resource metadata.
    public_url: str = "http://127.0.0.1:8000"
    stream: StreamOptions = field(default_factory=StreamOptions)


@dataclass
class AppState:
    """What the lifespan yields: the workspace(s) requests run in."""

    default: Workspace | None = None
    registry: Workspaces | None = None
    workspaces_seen: list[Workspace] = field(default_factory=list)

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


class _Backend:
    """Process-wide resources, opened by the first lifespan entry and closed by the last.

    Streamable HTTP enters the lifespan once; the SSE transport enters it for every
    connection. Sharing keeps one API client, one ledger and one resumer either way.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None,
        base_url: str,
        transport: httpx2.AsyncBaseTransport | None,
        per_user: bool,
        resume_interval: float,
        notifier: SyncNotifier,
        sleep: Callable[[float], Awaitable[None]],
        retry: RetryPolicy | None,
        api_clock: ApiClock | None,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._retry = retry
        self._api_clock = api_clock
        self._notifier = notifier
        self._sleep = sleep
        self._settings = settings
        self._api_key = api_key
        self._base_url = base_url
        self._transport = transport
        self._per_user = per_user
        self._resume_interval = resume_interval
        self._lock = anyio.Lock()
        self._users = 0
        self._stack: AsyncExitStack | None = None
        self.state: AppState | None = None
        #: How the HTTP app authenticates routes the SDK does not (set by `build_server`
        #: when the server authenticates at all).
        self.authenticate: Callable[[Request], Awaitable[Workspace | Response]] | None = None

    async def acquire(self) -> AppState:
        async with self._lock:
            self._users += 1
            if self.state is None:
                self._stack = AsyncExitStack()
                try:
                    self.state = await self._open(self._stack)
                except BaseException:
                    self._users -= 1
                    await self._stack.aclose()
                    self._stack = None
                    raise
            return self.state

    async def release(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users == 0 and self._stack is not None:
                stack, self._stack, self.state = self._stack, None, None
                await stack.aclose()

    def _client(self, key: SecretStr) -> TradavityClient:
        """The one place API clients are made: the server's own, and each hosted user's."""
        return TradavityClient(
            key,
            base_url=self._base_url,
            transport=self._transport,
            retry=self._retry,
            clock=self._api_clock,
        )

    def _workspace(self, api: TradavityClient, ledger: Ledger) -> Workspace:
        """The one place workspaces are made: the server's own, and each hosted user's."""
        return Workspace(
            api=api,
            ledger=ledger,
            ref=RefData(api),
            sleep=self._sleep,
            clock=self._clock,
            duplicate_window=self._settings.duplicate_window,
        )

    async def _open(self, stack: AsyncExitStack) -> AppState:
        ledger = Ledger(self._settings.ledger_path, clock=self._clock)
        stack.callback(ledger.close)
        state = AppState()
        if self._per_user:
            registry = Workspaces(
                make_client=self._client, make_workspace=lambda api: self._workspace(api, ledger)
            )
            stack.push_async_callback(registry.aclose)
            state.registry = registry
        elif self._api_key is not None:
            api = self._client(SecretStr(self._api_key))
            stack.push_async_callback(api.aclose)
            state.default = self._workspace(api, ledger)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        if state.default is not None:
            # Not awaited: the server answers `initialize` at once, even with the API
            # down; tools/list waits briefly for the scopes.
            tg.start_soon(state.default.load_scopes)
        tg.start_soon(_resume_forever, state, self._settings, self._resume_interval)
        tg.start_soon(self._notifier.run)
        tg.start_soon(_poll_sync_forever, state, SYNC_POLL_SECONDS)
        return state


def _sandbox_transport(settings: Settings) -> tuple[httpx2.AsyncBaseTransport, str]:
    from ..sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app

    config = SandboxConfig(db=settings.sandbox_db)
    if settings.sandbox_demo_days is not None:
        config.demo_days = settings.sandbox_demo_days
    app = create_app(config)
    return SandboxTransport(app), DEMO_KEY


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    stdio: bool = True,
    hosted: HostedOptions | None = None,
    resume_interval: float = RESUME_INTERVAL_SECONDS,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    retry: RetryPolicy | None = None,
    api_clock: ApiClock | None = None,
    clock: Callable[[], float] | None = None,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING",
) -> MCPServer:
    """Build the MCP server for these settings.

    `transport` replaces the network (tests hand in the sandbox). In sandbox mode
    without one, the server talks to an in-process sandbox with the demo key.
    `hosted` configures authentication for the HTTP transports. `retry` and
    `api_clock` reach the API client (drills retry fast; benchmarks speed time up).
    `clock` is the server's own time (the ledger's windows, `now`); tests hand in the
    sandbox's clock so a day can pass in a moment.
    """
    hosted = hosted or HostedOptions()
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    base_url = settings.base_url
    if transport is None and settings.sandbox:
        transport, demo_key = _sandbox_transport(settings)
        base_url = "http://sandbox.local/api/v1"
        api_key = api_key or demo_key
    per_user = hosted.auth == "per-user"
    if api_key is None and not per_user:
        raise ValueError("no API key: pass one in settings, use the sandbox, or per-user auth")

    bus = PrincipalBus()
    notifier = SyncNotifier(bus)
    backend = _Backend(
        settings,
        notifier=notifier,
        api_key=api_key,
        base_url=base_url,
        transport=transport,
        per_user=per_user,
        resume_interval=resume_interval,
        sleep=sleep or anyio.sleep,
        retry=retry,
        api_clock=api_clock,
        clock=clock or time.time,
    )

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        state = await backend.acquire()
        try:
            yield state
        finally:
            await backend.release()

    auth_kwargs: dict[str, Any] = {}
    verifier: ServerTokenVerifier | PerUserVerifier | None = None
    if hosted.auth != "none":
        if hosted.auth == "token":
            if hosted.token is None:
                raise ValueError("token auth needs a server token (TRADAVITY_MCP_TOKEN)")
            verifier = ServerTokenVerifier(hosted.token)
        else:
            verifier = PerUserVerifier(lambda: backend.state.registry if backend.state else None)
        auth_kwargs["token_verifier"] = verifier
        auth_kwargs["auth"] = AuthSettings(
            issuer_url=AnyHttpUrl("https://app.tradavity.com"),
            resource_server_url=AnyHttpUrl(hosted.public_url.rstrip("/") + "/mcp"),
            validate_token_resource=False,
        )

    mcp = PlainServer(
        "tradavity",
        title="Tradavity journal",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://tradavity.com",
        lifespan=lifespan,
        middleware=[_RequestScope(output_schemas=settings.output_schemas, notifier=notifier)],
        # The SDK configures root logging (Rich, at this level) if nothing has yet: keep it
        # quiet by default, so an embedding host is not flooded with per-request INFO lines.
        log_level=log_level,
        subscriptions=bus,
        **auth_kwargs,
    )
    env = ToolEnv(
        workspace=lambda ctx: current_workspace(),
        allowed_dirs=settings.allowed_dirs,
        stdio=stdio,
        output_schemas=settings.output_schemas,
    )
    register_read_tools(mcp, env.workspace)
    register_sync_tools(mcp, notifier, env.workspace)
    register_prompts(mcp, load_prompts())
    if not settings.read_only:
        register_write_tools(mcp, env)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__})

    # The SDK's `custom_route` decorator is untyped; register through a typed name.
    route: Callable[[Handler], Handler] = mcp.custom_route(
        "/healthz", methods=["GET"], include_in_schema=False
    )
    route(healthz)

    async def authenticate(request: Request) -> Workspace | Response:
        """The same authentication as `/mcp`, for the routes the SDK leaves open."""
        state = backend.state
        if state is None:
            return JSONResponse({"error": "starting"}, status_code=503)
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].casefold() == "bearer " else ""
        if verifier is not None:
            access = await verifier.verify_token(token) if token else None
            if access is None:
                return _unauthorized(hosted.public_url)
            if state.registry is not None:
                ws = state.registry.get(token)
                if ws is None:
                    return _unauthorized(hosted.public_url)
                return ws
        if state.default is None:
            return _unauthorized(hosted.public_url)
        return state.default

    stream = sync_stream_endpoint(
        authenticate,
        heartbeat_seconds=hosted.stream.heartbeat_seconds,
        clock=hosted.stream.clock,
        poll_seconds=hosted.stream.poll_seconds,
    )
    route2: Callable[[Handler], Handler] = mcp.custom_route(
        "/sync/stream", methods=["GET"], include_in_schema=False
    )
    route2(stream)
    if verifier is not None:
        backend.authenticate = authenticate
    _BACKENDS[mcp] = backend
    return mcp


#: The shared backend of each server, for `build_http_app`.
_BACKENDS: weakref.WeakKeyDictionary[MCPServer, _Backend] = weakref.WeakKeyDictionary()


def _unauthorized(public_url: str) -> Response:
    metadata = public_url.rstrip("/") + "/.well-known/oauth-protected-resource/mcp"
    return JSONResponse(
        {"error": "invalid_token", "error_description": "send Authorization: Bearer <token>"},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", resource_metadata="{metadata}"'
        },
    )


#: Binds on which the SDK turns DNS-rebinding protection on by itself.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Routes answered without authentication (they say nothing about the user).
PUBLIC_PATHS = frozenset({"/healthz"})
PUBLIC_PREFIXES = ("/.well-known/",)


def _security_for(
    host: str, allowed_hosts: list[str] | None, allowed_origins: list[str] | None
) -> TransportSecuritySettings | None:
    """The Host/Origin rules: the ones listed, else the SDK's loopback defaults on a
    loopback bind, else none (the CLI refuses such a bind without `--allowed-host`)."""
    if allowed_hosts or allowed_origins:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(allowed_hosts or []),
            allowed_origins=list(allowed_origins or []),
        )
    if host in LOOPBACK_HOSTS:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    return None


class _HttpGuard:
    """ASGI middleware in front of every route, present and future: the Host/Origin
    checks `/mcp` gets from the SDK, and the bearer check when the server authenticates
    (except `PUBLIC_PATHS`). It also records the client's address for the pre-auth
    limits of `_hosted`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        security: TransportSecuritySettings | None,
        check_public: bool,
        authenticate: Callable[[Request], Awaitable[Workspace | Response]] | None,
    ) -> None:
        self.app = app
        self.checks = TransportSecurityMiddleware(security) if security is not None else None
        self.check_public = check_public
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = CLIENT_ADDRESS.set(str(client[0]) if client else "unknown")
        try:
            refusal = await self._refusal(scope)
            if refusal is None:
                await self.app(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await refusal(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)

    async def _refusal(self, scope: Scope) -> Response | None:
        request = Request(scope)
        path = request.url.path
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if self.checks is not None and (self.check_public or path not in PUBLIC_PATHS):
            refused = await self.checks.validate_request(request, is_post=False)
            if refused is not None:
                return refused
        if self.authenticate is not None and not public:
            who = await self.authenticate(request)
            if isinstance(who, Response):
                return who
        return None


def build_http_app(
    mcp: MCPServer,
    *,
    kind: Literal["http", "sse"],
    host: str,
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> Starlette:
    """The ASGI app for streamable HTTP (`/mcp`) or legacy SSE (`/sse`), with `/healthz`
    and `/sync/stream`.

    Every route sits behind `_HttpGuard`: on loopback the SDK's DNS-rebinding rules
    apply by default; elsewhere the allowed Host and Origin values must be listed.
    `/healthz` is answered without authentication, and for any Host on a non-loopback
    bind (load balancers probe it by address).
    """
    security = _security_for(host, allowed_hosts, allowed_origins)
    inner = (
        mcp.sse_app(transport_security=security, host=host)
        if kind == "sse"
        else mcp.streamable_http_app(transport_security=security, host=host)
    )
    backend = _BACKENDS[mcp]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Hold the backend for the app's whole life: SSE would otherwise open it only
        # while a connection is up, and /sync/stream needs it between connections.
        await backend.acquire()
        try:
            if kind == "http":
                async with mcp.session_manager.run():
                    yield
            else:
                yield
        finally:
            await backend.release()

    guard = Middleware(
        _HttpGuard,
        security=security,
        check_public=host in LOOPBACK_HOSTS,
        authenticate=backend.authenticate,
    )
    return Starlette(routes=[Mount("/", app=inner)], middleware=[guard], lifespan=lifespan)


class _RequestScope:
    """Around every request: make the caller's workspace current (resources and
    completions get no Context), hide tools its key's scopes cannot use (refusing them
    if a host calls one anyway), and send compact tool schemas."""

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
        if ctx.method in {"tools/list", "tools/call"}:
            await ws.wait_for_scopes()
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


async def _poll_sync_forever(state: AppState, interval: float) -> None:
    """Pick up syncs the platform ran on its own (the 15-minute schedule)."""
    while True:
        await anyio.sleep(interval)
        for ws in state.workspaces():
            if ws.scopes is not None and "read:autosync" not in ws.scopes:
                continue
            try:
                await refresh_sync(ws)
            except Exception as exc:  # polling must outlive any one failure
                logger.info("sync poll failed: %s", exc)


async def _resume_forever(state: AppState, settings: Settings, interval: float) -> None:
    """Finish unattended pending writes; now and then, prune the ledger's old calls."""
    env = RunEnv(allowed_dirs=list(settings.allowed_dirs))
    retention = settings.ledger_retention_days * 86400
    pruned_at = -math.inf
    while True:
        for ws in state.workspaces():
            try:
                await resume_pending(ws, env)
            except Exception:  # the resumer must outlive any one failure
                logger.exception("resumer pass failed")
        workspaces = state.workspaces()
        if workspaces and workspaces[0].clock() - pruned_at > PRUNE_INTERVAL_SECONDS:
            pruned_at = workspaces[0].clock()
            try:
                workspaces[0].ledger.prune(pruned_at - retention)
            except Exception:
                logger.exception("ledger prune failed")
        await anyio.sleep(interval)
