"""The MCP server: `build_server(settings)` and the process-wide backend it shares.

The lifespan opens one `Backend` per server: the API client(s), the write ledger and the
background tasks (`background`), shared by every connection of the process. Tools come
from one table (`tools.TOOLS`); `scope.RequestScope` runs around every request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal

import anyio
import httpx2
from mcp.server.apps import Apps
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..api.client import RetryPolicy, TradavityClient
from ..api.clock import Clock, Now, SystemClock
from ..api.idempotency import principal_for_key
from ..api.pacing import SendWindow
from ..settings import Settings
from .apps import AppsOnly, register_apps
from .auth import KeyMemory, PerUserVerifier, ServerTokenVerifier, Workspaces, unauthorized
from .background import (
    REFDATA_REFRESH_SECONDS,
    RESUME_INTERVAL_SECONDS,
    SYNC_POLL_SECONDS,
    WARM_UP_DELAY_SECONDS,
    build_models_soon,
    poll_sync_forever,
    refresh_reference_forever,
    resume_forever,
)
from .completions import register_completions
from .deferred import defer_registration
from .plain import PlainServer
from .prompts import PromptTemplate, check_prompt_requests, load_prompts
from .refdata import RefData
from .scope import AppState, RequestScope
from .sync.notifier import PrincipalBus, SyncNotifier, install_legacy_subscriptions
from .sync.stream import RECHECK_SECONDS
from .workspace import Workspace
from .writes.offload import AsyncLedger, open_async_ledger

if TYPE_CHECKING:
    from mcp.server.mcpserver import RequestStateSecurity
    from redis.asyncio import Redis

    from .sync.shared import RedisSync

__all__ = [
    "INSTRUCTIONS",
    "AppState",
    "Backend",
    "HostedOptions",
    "StreamOptions",
    "TradavityServer",
    "build_server",
]

INSTRUCTIONS = """\
Tradavity trading journal. To journal a trade the user describes, call journal_trade once \
with the trade plus its tags, fills, screenshot and checklist; use create_trade alone only \
for a bare trade. Times without an offset, and every day and time shown, are the user's \
(their Tradavity timezone; `lookup me` gives their date and time now): a trader's "today" \
is that date, not the UTC one. Accounts, \
tags, strategies and checklist items are accepted by name; an unknown name fails with the \
closest matches, so correct it instead of guessing ids. Never invent P&L: ask. A result \
marked replayed or suspected_duplicate means nothing new was written; pending means it \
will be finished automatically."""

AuthMode = Literal["none", "token", "per-user"]


@dataclass(frozen=True)
class StreamOptions:
    """The `/sync/stream` heartbeat: its period and the clock that decides it is due;
    and how often an OAuth bearer's stream checks it still stands."""

    heartbeat_seconds: float = 15.0
    clock: Now = time.monotonic
    poll_seconds: float = 1.0
    recheck_seconds: float = RECHECK_SECONDS


@dataclass(frozen=True)
class HostedOptions:
    """How the HTTP transports authenticate (see `auth`)."""

    auth: AuthMode = "none"
    #: The shared secret for `auth="token"`.
    token: SecretStr | None = None
    #: Where clients reach this server, for the OAuth resource metadata.
    public_url: str = "http://127.0.0.1:8000"
    stream: StreamOptions = field(default_factory=StreamOptions)


@dataclass(frozen=True)
class Connection:
    """Where and as whom the server talks to Tradavity, and how time passes for it."""

    api_key: str | None
    base_url: str
    transport: httpx2.AsyncBaseTransport | None
    retry: RetryPolicy | None
    #: The one clock: the API client's waits and pacing, the ledger's windows, `now`,
    #: a sync cooldown's wait. Tests hand in the sandbox's, so a day passes in a moment.
    clock: Clock


class Backend:
    """Process-wide resources, opened by the first lifespan entry and closed by the last.

    Streamable HTTP enters the lifespan once; the SSE transport enters it for every
    connection. Sharing keeps one API client, one ledger and one resumer either way.
    """

    def __init__(
        self,
        settings: Settings,
        link: Connection,
        *,
        hosted: HostedOptions,
        verifier: ServerTokenVerifier | PerUserVerifier | None,
        notifier: SyncNotifier,
        resume_interval: float,
    ) -> None:
        self.settings = settings
        self.link = link
        self.hosted = hosted
        #: Checks bearer tokens when the server authenticates at all (set once built).
        self.verifier = verifier
        self.notifier = notifier
        self.resume_interval = resume_interval
        self._lock = anyio.Lock()
        self._users = 0
        self._stack: AsyncExitStack | None = None
        self.state: AppState | None = None
        #: `--redis`: this process's one Redis client (None: nothing shared between replicas).
        self.redis: Redis | None = None
        #: What `/readyz` last found down (`store`, `redis`), so each change is logged once.
        self.not_ready: set[str] = set()
        #: Where each API key's send times are kept, by principal (None: each client's own).
        self.windows: Callable[[str], SendWindow] | None = None
        #: Bearer key checks shared by replicas (None: this process's own).
        self.keys: KeyMemory | None = None
        #: `--redis`: the sync runs, events and cooldowns every replica shares.
        self.shared_sync: RedisSync | None = None
        #: Set by the first message after `initialize` (see `HandshakeWatch`).
        self._greeted: anyio.Event | None = None

    def greeted(self) -> None:
        """A client is past `initialize`: work deferred until then may start."""
        if self._greeted is not None:
            self._greeted.set()

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

    @asynccontextmanager
    async def held(self) -> AsyncIterator[AppState]:
        state = await self.acquire()
        try:
            yield state
        finally:
            await self.release()

    def _client(self, key: SecretStr) -> TradavityClient:
        """The one place API clients are made: the server's own, and each hosted user's."""
        windows = self.windows
        return TradavityClient(
            key,
            base_url=self.link.base_url,
            transport=self.link.transport,
            retry=self.link.retry,
            clock=self.link.clock,
            window=windows(principal_for_key(key.get_secret_value())) if windows else None,
        )

    def _workspace(self, api: TradavityClient, ledger: AsyncLedger) -> Workspace:
        """The one place workspaces are made: the server's own, and each hosted user's."""
        ws = Workspace(
            api=api,
            ledger=ledger,
            ref=RefData(api),
            sleep=self.link.clock.sleep,
            clock=self.link.clock.now,
            duplicate_window=self.settings.duplicate_window,
        )
        if self.shared_sync is not None:
            ws.sync = self.shared_sync.monitor(api.principal)
        return ws

    async def _open(self, stack: AsyncExitStack) -> AppState:
        # Opened, and closed, in a worker thread, like every later call on it.
        ledger = await open_async_ledger(self.settings, clock=self.link.clock.now)
        stack.push_async_callback(ledger.aclose)
        if self.redis is not None:
            stack.push_async_callback(self.redis.aclose)
        state = AppState()
        if self.hosted.auth == "per-user":
            registry = Workspaces(
                make_client=self._client,
                make_workspace=lambda api: self._workspace(api, ledger),
                shared=self.keys,
            )
            stack.push_async_callback(registry.aclose)
            state.registry = registry
        elif self.link.api_key is not None:
            api = self._client(SecretStr(self.link.api_key))
            stack.push_async_callback(api.aclose)
            state.default = self._workspace(api, ledger)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        background: list[Callable[[], Awaitable[None]]] = [
            partial(resume_forever, state.workspaces, self.settings, self.resume_interval),
            partial(poll_sync_forever, state.workspaces, SYNC_POLL_SECONDS),
            partial(refresh_reference_forever, state.workspaces, REFDATA_REFRESH_SECONDS),
            partial(build_models_soon, WARM_UP_DELAY_SECONDS),
        ]
        if state.default is not None:
            # Not awaited: the server answers `initialize` at once, even with the API
            # down; tools/list waits briefly for the scopes. Nor started before
            # `initialize` is answered: the first request makes the HTTP transport (a
            # TLS context, the HTTP/1.1 stack), and the resumer loads the journaling
            # code, which would delay that answer. So does the background work.
            self._greeted = anyio.Event()
            background.insert(0, state.default.load_scopes)
            for work in background:
                tg.start_soon(_after, self._greeted, work)
        else:
            for work in background:
                tg.start_soon(_now, work)
        tg.start_soon(self.notifier.run)
        if self.shared_sync is not None:
            tg.start_soon(self.shared_sync.run)
        return state

    async def authenticate(self, request: Request) -> Workspace | Response:
        """The same authentication as `/mcp`, for the routes the SDK leaves open."""
        state = self.state
        if state is None:
            return JSONResponse({"error": "starting"}, status_code=503)
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].casefold() == "bearer " else ""
        if self.verifier is not None:
            access = await self.verifier.verify_token(token) if token else None
            if access is None:
                return unauthorized(self.hosted.public_url)
            if state.registry is not None:
                ws = state.registry.get(token)
                if ws is None:
                    return unauthorized(self.hosted.public_url)
                return ws
        if state.default is None:
            return unauthorized(self.hosted.public_url)
        return state.default


async def _after(event: anyio.Event, work: Callable[[], Awaitable[None]]) -> None:
    await event.wait()
    await work()


async def _now(work: Callable[[], Awaitable[None]]) -> None:
    await work()


class HandshakeWatch:
    """Middleware: tells the backend once a message other than `initialize` arrives (the
    `initialized` notification, or a request), i.e. once `initialize` was answered."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "initialize":
            self.backend.greeted()
        return await call_next(ctx)


class TradavityServer(PlainServer):
    """The MCP server, holding the backend its HTTP app shares (see `http`)."""

    backend: Backend


def _sandbox_transport(settings: Settings) -> tuple[httpx2.AsyncBaseTransport, str]:
    from ..sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app  # noqa: PLC0415

    config = SandboxConfig(db=settings.sandbox_path)
    if settings.sandbox_demo_days is not None:
        config.demo_days = settings.sandbox_demo_days
    app = create_app(config)
    return SandboxTransport(app), DEMO_KEY


def _verifier(
    hosted: HostedOptions, backend: Callable[[], Backend]
) -> ServerTokenVerifier | PerUserVerifier | None:
    if hosted.auth == "none":
        return None
    if hosted.auth == "token":
        if hosted.token is None:
            raise ValueError("token auth needs a server token (TRADAVITY_MCP_TOKEN)")
        return ServerTokenVerifier(hosted.token)

    def registry() -> Workspaces | None:
        state = backend().state
        return state.registry if state is not None else None

    return PerUserVerifier(registry)


def _auth_settings(hosted: HostedOptions) -> AuthSettings:
    # The issuer is this server (its own OAuth endpoints in oauth mode); no other
    # authorization server is ever named.
    return AuthSettings(
        issuer_url=AnyHttpUrl(hosted.public_url.rstrip("/")),
        resource_server_url=AnyHttpUrl(hosted.public_url.rstrip("/") + "/mcp"),
        validate_token_resource=False,
    )


def _connection(
    settings: Settings,
    hosted: HostedOptions,
    transport: httpx2.AsyncBaseTransport | None,
    retry: RetryPolicy | None,
    clock: Clock,
) -> Connection:
    """Where the server talks to Tradavity: the network, or the embedded sandbox."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    base_url = settings.base_url
    if transport is None and settings.sandbox:
        transport, demo_key = _sandbox_transport(settings)
        base_url = "http://sandbox.local/api/v1"
        api_key = api_key or demo_key
    if api_key is None and hosted.auth != "per-user":
        raise ValueError("no API key: pass one in settings, use the sandbox, or per-user auth")
    return Connection(
        api_key=api_key, base_url=base_url, transport=transport, retry=retry, clock=clock
    )


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    stdio: bool = True,
    hosted: HostedOptions | None = None,
    resume_interval: float = RESUME_INTERVAL_SECONDS,
    retry: RetryPolicy | None = None,
    clock: Clock | None = None,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING",
) -> TradavityServer:
    """Build the MCP server for these settings.

    `transport` replaces the network (tests hand in the sandbox). In sandbox mode
    without one, the server talks to an in-process sandbox with the demo key.
    `hosted` configures authentication for the HTTP transports. `retry` reaches the API
    client (drills retry fast). `clock` is the one clock everything reads and waits on
    (default: the system's); tests hand in the sandbox's so a day passes in a moment,
    benchmarks a faster one.
    """
    hosted = hosted or HostedOptions()
    link = _connection(settings, hosted, transport, retry, clock or SystemClock())
    redis = _open_redis(settings.redis_url) if settings.redis_url is not None else None
    shared_sync = _shared_sync(redis, link.clock.now) if redis is not None else None
    bus = shared_sync.bus if shared_sync is not None else PrincipalBus()
    notifier = SyncNotifier(bus)
    verifier = _verifier(hosted, lambda: backend)
    backend = Backend(
        settings,
        link,
        hosted=hosted,
        verifier=verifier,
        notifier=notifier,
        resume_interval=resume_interval,
    )

    @asynccontextmanager
    async def lifespan(server: MCPServer[Any]) -> AsyncIterator[AppState]:
        async with backend.held() as state:
            yield state

    mcp = TradavityServer(
        "tradavity",
        title="Tradavity journal",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://tradavity.com",
        lifespan=lifespan,
        middleware=[
            HandshakeWatch(backend),
            RequestScope(output_schemas=settings.output_schemas, notifier=notifier),
            AppsOnly(),
        ],
        # The capability alone: its views and tool are added on first use (`_register`).
        extensions=[Apps()],
        # The SDK configures root logging (Rich, at this level) if nothing has yet: keep it
        # quiet by default, so an embedding host is not flooded with per-request INFO lines.
        log_level=log_level,
        subscriptions=bus,
        token_verifier=verifier,
        auth=_auth_settings(hosted) if verifier is not None else None,
        request_state_security=_request_state(settings),
    )
    mcp.backend = backend
    backend.shared_sync = shared_sync
    if redis is not None and settings.redis_url is not None:
        _share_through_redis(backend, redis, settings.redis_url)
    prompts = cache(load_prompts)
    defer_registration(mcp, lambda: _register(mcp, settings, prompts(), stdio=stdio))
    install_legacy_subscriptions(mcp, notifier)
    register_completions(mcp)
    check_prompt_requests(mcp, prompts)
    if not stdio:
        from .http import add_routes  # noqa: PLC0415 (HTTP only)

        add_routes(mcp, backend)
    return mcp


def _register(
    mcp: TradavityServer, settings: Settings, prompts: list[PromptTemplate], *, stdio: bool
) -> None:
    """The tools, resources and prompts, added on first use (`deferred`), with their
    modules."""
    from .prompts import register_prompts  # noqa: PLC0415 (see `deferred`)
    from .resources import register_resources  # noqa: PLC0415
    from .tools import ToolEnv, register_tools  # noqa: PLC0415

    env = ToolEnv(
        allowed_dirs=settings.allowed_dirs, stdio=stdio, output_schemas=settings.output_schemas
    )
    register_tools(mcp, env, read_only=settings.read_only)
    register_apps(mcp, read_only=settings.read_only)
    register_resources(mcp)
    register_prompts(mcp, prompts)


def _open_redis(url: str) -> Redis:
    """`--redis`: the process's one client."""
    from .replicas.redis_client import open_redis  # noqa: PLC0415 (redis only when configured)

    return open_redis(url)


def _shared_sync(redis: Redis, clock: Now) -> RedisSync:
    """`--redis`: sync runs, events, cooldowns and the subscription bus in Redis."""
    from .sync.shared import RedisSync  # noqa: PLC0415 (redis only when configured)

    return RedisSync(redis, clock=clock)


def _share_through_redis(backend: Backend, redis: Redis, url: str) -> None:
    """`--redis`: the process's one client; each API key's rate window in it."""
    from .replicas.keys import RedisKeyMemory  # noqa: PLC0415
    from .replicas.window import redis_windows  # noqa: PLC0415

    backend.redis = redis
    backend.windows = redis_windows(backend.redis, url)
    backend.keys = RedisKeyMemory(backend.redis, url)


def _request_state(settings: Settings) -> RequestStateSecurity | None:
    """`TRADAVITY_MCP_SECRET_KEY`: the request-state key every replica shares (None: the
    SDK's key of this process)."""
    if settings.secret_key is None:
        return None
    from .replicas.secret import request_state_security  # noqa: PLC0415

    return request_state_security(settings)
