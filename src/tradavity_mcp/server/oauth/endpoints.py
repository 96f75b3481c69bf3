"""The routes of `--auth oauth`: discovery (RFC 9728, RFC 8414), `/authorize`,
`/consent`, `/token`, `/register` (RFC 7591) and `/revoke` (RFC 7009).

The SDK's handlers do the protocol (parameter parsing, PKCE, redirect URI checks,
client authentication, error shapes); `TradavityProvider` decides, `Consent` asks the
user. In front of `/authorize` and `/register`, what a stranger may send is limited
here: a rate per client address (an IPv6 client by its /64), a small request body, and
the size of what would be stored (`bounds`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import AccessToken, RefreshToken
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from pydantic import SecretStr
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from ...settings import ConfigError
from ..auth import CLIENT_ADDRESS
from ..writes.stores import is_postgres_url
from .bounds import authorize_refusal, registration_problem
from .clients import DEFAULT_REDIRECT_HOSTS, ClientDocuments, RateLimit, SharedLimits, fetch_limit
from .consent import CONSENT_PATH, Consent, KeyCheck, consent_limit, request_limit
from .crypto import load_secret
from .offload import AsyncOAuthStore
from .provider import Resolved, TradavityProvider
from .store import MAX_PENDING, OAuthStoreUnavailable
from .stores import STORE_FILE, open_oauth_store

__all__ = [
    "STORE_FILE",
    "OAuthOptions",
    "OAuthServer",
    "resource_metadata_routes",
    "store_down",
]
logger = logging.getLogger("tradavity_mcp.oauth")

PRM_PATHS = ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource")


@dataclass(frozen=True)
class OAuthOptions:
    """What `--auth oauth` needs beyond the server's own settings."""

    #: Where clients reach this server: the issuer, and `<public_url>/mcp` the resource.
    public_url: str
    state_dir: Path
    #: The bind is loopback: a missing secret may be generated into the state directory.
    loopback: bool
    secret_key: SecretStr | None = None
    #: Hosts dynamic registration accepts https redirect URIs on.
    redirect_hosts: tuple[str, ...] = DEFAULT_REDIRECT_HOSTS
    #: Accept client metadata documents served over http from loopback (tests only).
    allow_loopback_documents: bool = False
    #: Dynamic registrations per client address, per hour; and in all, per hour, from
    #: addresses none of whose registered clients completed an authorization still live
    #: (a flood from new addresses cannot lock out a connector already in use).
    registrations_per_address: int = 10
    registrations_total: int = 200
    #: `/authorize` requests per client address, per minute.
    authorizations_per_address: int = 20
    #: Consent requests waiting for a key, at most (the oldest give way past it).
    max_pending: int = MAX_PENDING
    access_ttl: float = 3600.0
    refresh_ttl: float = 30 * 86400.0
    store_path: Path | None = field(default=None)
    #: `--store postgresql://...`: grants, codes and tokens shared by replicas (then the
    #: secret must come from TRADAVITY_MCP_SECRET_KEY, the same on every replica).
    store_url: str | None = None


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    return CORSMiddleware(
        app=app, allow_origins="*", allow_methods=methods, allow_headers=["mcp-protocol-version"]
    )


def _limited(app: ASGIApp, most: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> ASGIApp:
    return RequestBodyLimitMiddleware(app, most)


#: The most a stranger's `/authorize` or `/register` body may be, read before `bounds`
#: says what in it is too long (far more than any honest one: `bounds` keeps less).
SMALL_BODY = 256 * 1024

_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, error: str, description: str, **headers: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**_NO_STORE, **headers},
    )


#: The answer while the store cannot be reached: try again, do not start over.
STORE_DOWN = {
    "error": "temporarily_unavailable",
    "error_description": "the authorization server cannot reach its store; try again shortly",
}


def store_down(exc: OAuthStoreUnavailable) -> Response:
    """The answer while the store is unreachable (a 503: the client keeps its tokens and
    tries again); why is logged, not told."""
    logger.error("%s", exc)
    return JSONResponse(
        STORE_DOWN, status_code=503, headers={"Retry-After": "5", "Cache-Control": "no-store"}
    )


def _store_guarded(handler: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """The handler, answering `store_down` while the store is unreachable."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthStoreUnavailable as exc:
            return store_down(exc)

    return request_response(guarded)


def resource_metadata_routes(public_url: str, authorization_server: str | None) -> list[Route]:
    """RFC 9728 metadata for `/mcp`. Without an authorization server of our own (token
    and per-user modes) none is named: clients send their bearer as configured."""
    resource = public_url.rstrip("/") + "/mcp"
    body: dict[str, object]
    if authorization_server is not None:
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": resource,
                "authorization_servers": [authorization_server],
                "resource_name": "Tradavity journal",
            }
        )
        body = metadata.model_dump(mode="json", exclude_none=True)
    else:
        body = {
            "resource": resource,
            "bearer_methods_supported": ["header"],
            "resource_name": "Tradavity journal",
        }

    async def handle(request: Request) -> Response:
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})

    return [
        Route(
            path,
            endpoint=_cors(request_response(handle), ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        )
        for path in PRM_PATHS
    ]


class OAuthServer:
    """This server as its own authorization server, in front of the users' keys."""

    def __init__(
        self, options: OAuthOptions, check_key: KeyCheck, limits: SharedLimits | None = None
    ) -> None:
        """`limits` (`--redis`): the rate limits as one for every replica."""
        self.options = options
        self.issuer = options.public_url.rstrip("/")
        self.resource = self.issuer + "/mcp"
        shared = is_postgres_url(options.store_url)
        self.box = load_secret(
            options.secret_key.get_secret_value() if options.secret_key else None,
            options.state_dir,
            loopback=options.loopback,
            shared=shared,
        )
        # Opened and checked here, before serving (no event loop runs yet); every call
        # while serving goes through `AsyncOAuthStore`, in a worker thread.
        store = open_oauth_store(
            store_url=options.store_url,
            state_dir=options.state_dir,
            store_path=options.store_path,
            access_ttl=options.access_ttl,
            refresh_ttl=options.refresh_ttl,
            max_pending=options.max_pending,
        )
        self.store = AsyncOAuthStore(store)
        if not store.check_secret(self.box.mac("store secret check")):
            store.close()
            raise ConfigError(
                f"TRADAVITY_MCP_SECRET_KEY is not the secret the OAuth store "
                f"{self.store.where} seals users' keys with: give every replica the same "
                "one. To change it on purpose, end every grant first (`tradavity-mcp "
                "grants revoke-all`); users then connect again."
            )
        fetches = fetch_limit()
        self.documents = ClientDocuments(
            allow_loopback_http=options.allow_loopback_documents,
            limit=limits("documents", fetches) if limits else fetches,
        )
        self.provider = TradavityProvider(
            self.store,
            self.box,
            self.documents,
            issuer=self.issuer,
            resource=self.resource,
            redirect_hosts=tuple(h.lower() for h in options.redirect_hosts),
        )
        registrations = RateLimit(
            per_address=options.registrations_per_address, total=options.registrations_total
        )
        self.registrations = limits("register", registrations) if limits else registrations
        requests = RateLimit(
            per_address=options.authorizations_per_address, total=None, window=60.0
        )
        self.authorizations = limits("authorize", requests) if limits else requests
        tried, per_request = consent_limit(), request_limit()
        self.consent = Consent(
            self.store,
            self.box,
            check_key,
            self.issuer,
            limit=limits("consent", tried) if limits else tried,
            request_limit=limits("consent-request", per_request) if limits else per_request,
        )
        #: Paths answered without a bearer (the OAuth endpoints and discovery).
        self.paths = frozenset(
            {"/authorize", "/token", "/register", "/revoke", CONSENT_PATH, *PRM_PATHS}
        )

    def metadata(self) -> OAuthMetadata:
        base = self.issuer
        methods = ["none", "client_secret_post", "client_secret_basic"]
        # Strings, so the model keeps the issuer exactly (no trailing slash added).
        return OAuthMetadata.model_validate(
            {
                "issuer": base,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "registration_endpoint": base + "/register",
                "revocation_endpoint": base + "/revoke",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": methods,
                "revocation_endpoint_auth_methods_supported": methods,
                "code_challenge_methods_supported": ["S256"],
                "client_id_metadata_document_supported": True,
                "authorization_response_iss_parameter_supported": True,
            }
        )

    def routes(self) -> list[Route]:
        authenticator = ClientAuthenticator(self.provider)
        registration = RegistrationHandler(
            self.provider, options=ClientRegistrationOptions(enabled=True)
        )

        authorization = AuthorizationHandler(self.provider)

        async def authorize(request: Request) -> Response:
            # Refused here are never redirected: nothing about the client is checked yet.
            if not await self.authorizations.admit(CLIENT_ADDRESS.get()):
                return _error(
                    429,
                    "temporarily_unavailable",
                    "too many authorization requests from this address; try again in a minute",
                    **{"Retry-After": "60"},
                )
            params = request.query_params if request.method == "GET" else await request.form()
            problem = authorize_refusal(params)
            if problem is not None:
                return _error(400, "invalid_request", problem)
            return await authorization.handle(request)  # the same request: its form is read

        async def register(request: Request) -> Response:
            address = CLIENT_ADDRESS.get()
            proven = await self.provider.proven(address)
            if not await self.registrations.admit(address, overall=not proven):
                return _error(
                    429,
                    "too_many_requests",
                    "too many registrations from this address, or from new addresses in all, "
                    "in the last hour; try later",
                    **{"Retry-After": "3600"},
                )
            problem = registration_problem(await request.body())
            if problem is not None:
                return _error(400, "invalid_client_metadata", problem)
            return await registration.handle(request)  # the same request: its body is read

        async def revoke(request: Request) -> Response:
            return await self._revoke(authenticator, request)

        def post(
            handler: Callable[[Request], Awaitable[Response]],
            most: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
        ) -> ASGIApp:
            return _cors(_limited(_store_guarded(handler), most), ["POST", "OPTIONS"])

        metadata = MetadataHandler(self.metadata()).handle
        return [
            Route(
                "/.well-known/oauth-authorization-server",
                endpoint=_cors(request_response(metadata), ["GET", "OPTIONS"]),
                methods=["GET", "OPTIONS"],
            ),
            *resource_metadata_routes(self.issuer, self.issuer),
            Route(
                "/authorize",
                endpoint=_limited(_store_guarded(authorize), SMALL_BODY),
                methods=["GET", "POST"],
            ),
            Route(
                CONSENT_PATH,
                endpoint=_limited(_store_guarded(self.consent.handle)),
                methods=["GET", "POST"],
            ),
            Route(
                "/token",
                endpoint=post(TokenHandler(self.provider, authenticator).handle),
                methods=["POST", "OPTIONS"],
            ),
            Route("/register", endpoint=post(register, SMALL_BODY), methods=["POST", "OPTIONS"]),
            Route("/revoke", endpoint=post(revoke), methods=["POST", "OPTIONS"]),
        ]

    async def _revoke(self, authenticator: ClientAuthenticator, request: Request) -> Response:
        """RFC 7009. Not the SDK's handler: it requires `client_secret` in the form even
        from public clients, which send none."""
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            client = await authenticator.authenticate_request(request)
        except AuthenticationError as exc:
            return JSONResponse(
                {"error": "invalid_client", "error_description": exc.message},
                status_code=401,
                headers=no_store,
            )
        value = (await request.form()).get("token")
        if not isinstance(value, str) or not value:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "token is required"},
                status_code=400,
                headers=no_store,
            )
        found: AccessToken | RefreshToken | None = await self.provider.load_access_token(value)
        if found is None:
            found = await self.provider.load_refresh_token(client, value)
        if found is not None and found.client_id == client.client_id:
            await self.provider.revoke_token(found)
        # An unknown or foreign token is answered the same way (RFC 7009 2.2).
        return Response(status_code=200, headers=no_store)

    async def resolve(self, token: str) -> Resolved | None:
        return await self.provider.resolve(token)

    async def still_stands(self, token: str, resolved: Resolved) -> bool:
        """Whether an access token that was let in still stands: unexpired and its grant
        unrevoked (an open `/sync/stream` asks, and ends when not). While the store cannot
        be reached, only the expiry is known; a revocation, written to the store, is seen
        at the first check that reaches it."""
        if resolved.expires < self.provider.clock():
            return False
        try:
            return await self.provider.load_access_token(token) is not None
        except OAuthStoreUnavailable as exc:
            logger.warning("an open stream's token could not be checked again: %s", exc)
            return True

    async def key_for(self, principal: str) -> str | None:
        """The key a live grant holds for `principal` (`auth.KeptKeys`)."""
        return await self.provider.key_for(principal)

    async def aclose(self) -> None:
        await self.store.aclose()

    def close(self) -> None:
        """Close the store from where no event loop runs (a failed start, a test)."""
        self.store.sync.close()
