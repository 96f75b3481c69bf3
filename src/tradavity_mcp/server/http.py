"""The HTTP face of the server: `build_http_app` for streamable HTTP or SSE, the routes
beside `/mcp` (`/healthz`, `/readyz`, `/sync/stream`), and the guard in front of all of
them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import anyio
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..api.client import RetryPolicy, TradavityClient
from ..api.errors import TradavityError, Unauthorized
from ..api.idempotency import principal_for_key
from ..api.models import Me
from ..settings import API_KEY_PATTERN
from .auth import (
    CLIENT_ADDRESS,
    EXPIRED_TOKEN,
    GRANTED,
    PerUserVerifier,
    address_key,
    granted,
    unauthorized,
)
from .oauth import (
    KeyCheck,
    KeyRefused,
    OAuthOptions,
    OAuthServer,
    OAuthStoreUnavailable,
    resource_metadata_routes,
    store_down,
)
from .oauth.clients import SharedLimits
from .sync.stream import STILL_AUTHORIZED, sync_stream_endpoint
from .upload_page import UPLOAD_ROUTE, upload_endpoint
from .workspace import Workspace
from .writes.uploads import UPLOAD_PATH

if TYPE_CHECKING:
    from .app import Backend, TradavityServer

__all__ = ["LOOPBACK_HOSTS", "PUBLIC_PATHS", "add_routes", "build_http_app"]

Handler = Callable[[Request], Awaitable[Response]]
Authenticate = Callable[[Request], Awaitable[Workspace | Response]]

#: Binds on which the SDK turns DNS-rebinding protection on by itself.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Routes answered without authentication (they say nothing about the user).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/.well-known/", UPLOAD_PATH)


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "version": __version__})


def readyz_endpoint(backend: Backend) -> Handler:
    """`/readyz`: 200 when the store and Redis this server is configured with answer,
    else 503 naming what is down (see `ready`). `/healthz` stays "the process is alive"."""

    async def readyz(request: Request) -> Response:
        from .replicas.ready import readiness  # noqa: PLC0415 (loaded when first probed)

        status, body = await readiness(backend)
        return JSONResponse(body, status_code=status)

    return readyz


def add_routes(mcp: TradavityServer, backend: Backend) -> None:
    """`/healthz`, `/readyz` and `/sync/stream`, beside the SDK's own routes."""
    stream = backend.hosted.stream
    routes: dict[str, Handler] = {
        "/healthz": healthz,
        "/readyz": readyz_endpoint(backend),
        "/sync/stream": sync_stream_endpoint(
            backend.authenticate,
            heartbeat_seconds=stream.heartbeat_seconds,
            clock=stream.clock,
            poll_seconds=stream.poll_seconds,
            recheck_seconds=stream.recheck_seconds,
        ),
    }
    for path, handler in routes.items():
        # The SDK's `custom_route` decorator is untyped; register through a typed name.
        register: Callable[[Handler], Handler] = mcp.custom_route(
            path, methods=["GET"], include_in_schema=False
        )
        register(handler)
    upload: Callable[[Handler], Handler] = mcp.custom_route(
        UPLOAD_ROUTE, methods=["GET", "POST"], include_in_schema=False
    )
    upload(upload_endpoint(backend))


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


class HttpGuard:
    """ASGI middleware in front of every route, present and future: the Host/Origin
    checks `/mcp` gets from the SDK, and the bearer check when the server authenticates
    (except `PUBLIC_PATHS`). It also records the client's address for the pre-auth
    limits of `auth` and `oauth` (an IPv6 client by its /64: `auth.address_key`; the
    peer's, or with `--trusted-proxy` the address uvicorn took from a trusted balancer's
    `X-Forwarded-For`).

    With `oauth`, its endpoints are answered without a bearer (and without the Origin
    check: browsers and connectors call them from elsewhere; the consent page checks
    its own), and an access token it issued is swapped, inside this process, for the
    key it stands for before the request goes on (`auth.GRANTED` says the grant vouches
    for that key); a Tradavity key sent as the bearer goes on as it is."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        security: TransportSecuritySettings | None,
        check_public: bool,
        authenticate: Authenticate | None,
        oauth: OAuthServer | None = None,
        public_url: str = "",
    ) -> None:
        self.app = app
        self.checks = TransportSecurityMiddleware(security) if security is not None else None
        self.check_public = check_public
        self.authenticate = authenticate
        self.oauth = oauth
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = CLIENT_ADDRESS.set(address_key(str(client[0])) if client else "unknown")
        vouched = GRANTED.set(None)
        try:
            # The token swap comes first: the bearer check below then sees a key.
            refusal = await self._swap_token(scope) if self.oauth is not None else None
            if refusal is None:
                refusal = await self._refusal(scope)
            if refusal is None:
                await self.app(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await refusal(scope, receive, send)
        finally:
            GRANTED.reset(vouched)
            CLIENT_ADDRESS.reset(token)

    def _is_oauth_path(self, path: str) -> bool:
        return self.oauth is not None and (
            path in self.oauth.paths or path.startswith(PUBLIC_PREFIXES)
        )

    async def _swap_token(self, scope: Scope) -> Response | None:
        """Replace an access token we issued by its key; refuse one we do not know."""
        assert self.oauth is not None
        if scope["type"] != "http" or self._is_oauth_path(scope["path"]):
            return None
        headers = list(scope["headers"])
        for i, (name, value) in enumerate(headers):
            if name != b"authorization":
                continue
            text = value.decode("latin-1")
            token = text[7:].strip() if text[:7].casefold() == "bearer " else ""
            if not token or API_KEY_PATTERN.fullmatch(token):
                return None
            try:
                resolved = await self.oauth.resolve(token)
            except OAuthStoreUnavailable as exc:  # a 503, not a 401: the token may be good
                return store_down(exc)
            if resolved is None:
                return unauthorized(self.public_url, EXPIRED_TOKEN)
            headers[i] = (b"authorization", f"Bearer {resolved.key}".encode("latin-1"))
            scope["headers"] = headers
            # A stream this request opens asks again later (`sync.stream`).
            scope.setdefault("state", {})[STILL_AUTHORIZED] = partial(
                self.oauth.still_stands, token, resolved
            )
            # The grant vouches for its key: checking it spends no refusal budget.
            GRANTED.set(granted(resolved.key, resolved.scopes))
            return None
        return None

    async def _refusal(self, scope: Scope) -> Response | None:
        request = Request(scope)
        path = request.url.path
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if self._is_oauth_path(path):
            public = True
            # Host is checked; Origin is not (see the class docstring).
            request = Request(
                {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"origin"]}
            )
        if path.startswith(UPLOAD_PATH) and self._same_origin(request):
            # The upload page posts its form to itself: its own origin is not foreign.
            request = Request(
                {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"origin"]}
            )
        if self.checks is not None and (self.check_public or path not in PUBLIC_PATHS):
            refused = await self.checks.validate_request(request, is_post=False)
            if refused is not None:
                return refused
        if self.authenticate is not None and not public:
            who = await self.authenticate(request)
            if isinstance(who, Response):
                return who
        return None

    def _same_origin(self, request: Request) -> bool:
        """The Origin is this server's public URL's."""
        origin = request.headers.get("origin")
        if not origin or not self.public_url:
            return False
        public = urlsplit(self.public_url)
        return origin.rstrip("/") == f"{public.scheme}://{public.netloc}"


def _shared_limits(backend: Backend) -> SharedLimits | None:
    """`--redis`: the OAuth server's rate limits, one for every replica."""
    if backend.redis is None or backend.settings.redis_url is None:
        return None
    from .replicas.limits import redis_limits  # noqa: PLC0415 (redis only when configured)

    return redis_limits(backend.redis, backend.settings.redis_url)


def key_check(backend: Backend) -> KeyCheck:
    """The consent page's check of a key: one `/me` request, no retries, a short wait."""
    link = backend.link

    async def check(key: str) -> Me:
        api = TradavityClient(
            SecretStr(key),
            base_url=link.base_url,
            transport=link.transport,
            retry=RetryPolicy(max_attempts=1),
            clock=link.clock,
            window=backend.windows(principal_for_key(key)) if backend.windows else None,
        )
        try:
            with anyio.fail_after(KEY_CHECK_SECONDS):
                return await api.me()
        except Unauthorized:
            raise KeyRefused(
                "Tradavity refused this key: it may have been revoked, or mistyped. Create "
                "or copy a key under Settings \u2192 API in Tradavity and try again.",
                status=401,
            ) from None
        except (TradavityError, TimeoutError):
            raise KeyRefused(
                "Tradavity could not be reached to check the key. Try again in a minute.",
                status=503,
            ) from None
        finally:
            await api.aclose()

    return check


#: How long the consent page waits for Tradavity to check a key.
KEY_CHECK_SECONDS = 8.0


def build_http_app(
    mcp: TradavityServer,
    *,
    kind: Literal["http", "sse"],
    host: str,
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
    oauth: OAuthOptions | None = None,
) -> Starlette:
    """The ASGI app for streamable HTTP (`/mcp`) or legacy SSE (`/sse`), with `/healthz`
    and `/sync/stream`.

    Every route sits behind `HttpGuard`: on loopback the SDK's DNS-rebinding rules
    apply by default; elsewhere the allowed Host and Origin values must be listed.
    `/healthz` is answered without authentication, and for any Host on a non-loopback
    bind (load balancers probe it by address).

    `oauth` (with a per-user server) adds this server's own authorization server
    (`oauth.OAuthServer`). Without it, an authenticating server's resource metadata
    names no authorization server: its clients send the bearer they were given.
    """
    security = _security_for(host, allowed_hosts, allowed_origins)
    inner = (
        mcp.sse_app(transport_security=security, host=host)
        if kind == "sse"
        else mcp.streamable_http_app(transport_security=security, host=host)
    )
    backend = mcp.backend
    authorization: OAuthServer | None = None
    front: list[BaseRoute] = []
    if oauth is not None:
        if not isinstance(backend.verifier, PerUserVerifier):
            raise ValueError("--auth oauth needs a per-user server (users bring their own keys)")
        authorization = OAuthServer(oauth, key_check(backend), _shared_limits(backend))
        front = list(authorization.routes())
        # The grants hold the users' keys: the resumer finishes their writes while away.
        backend.kept_keys = authorization
    elif backend.verifier is not None:
        front = list(resource_metadata_routes(backend.hosted.public_url, None))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Hold the backend for the app's whole life: SSE would otherwise open it only
        # while a connection is up, and /sync/stream needs it between connections.
        async with backend.held():
            try:
                if kind == "http":
                    async with mcp.session_manager.run():
                        yield
                else:
                    yield
            finally:
                if authorization is not None:
                    await authorization.aclose()

    guard = Middleware(
        HttpGuard,
        security=security,
        check_public=host in LOOPBACK_HOSTS,
        authenticate=backend.authenticate if backend.verifier is not None else None,
        oauth=authorization,
        public_url=backend.hosted.public_url,
    )
    return Starlette(routes=[*front, Mount("/", app=inner)], middleware=[guard], lifespan=lifespan)
