"""The authorization server's decisions, behind the SDK's OAuth handlers (which parse
requests, check PKCE and redirect URIs, and shape errors): which clients exist, what a
consent request holds, how codes and refresh tokens are spent, and what a bearer
token stands for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from ...api.idempotency import principal_for_key
from ..auth import CLIENT_ADDRESS
from .bounds import KEPT_FIELDS, MAX_CLIENT_NAME, challenge_problem, scope_problem
from .clients import ClientDocuments, is_client_document_url, redirect_allowed
from .crypto import KeyBox
from .offload import AsyncOAuthStore
from .store import Grant, OAuthStoreUnavailable, Pending, TokenPair

__all__ = ["Resolved", "TradavityProvider", "same_resource"]

logger = logging.getLogger("tradavity_mcp.oauth")


def same_resource(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


#: What a registration is kept with beside `bounds.KEPT_FIELDS`: what the server issues.
_ISSUED = frozenset(
    {"client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at"}
)
#: The grant types this server supports; a registration keeps only these of its own.
_GRANT_TYPES = ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class Resolved:
    """What an access token stands for: a grant, the key it unlocks, when it expires, and
    the scopes Tradavity gave that key when the user consented."""

    grant_id: str
    key: str
    expires: float
    scopes: tuple[str, ...] = ()


class TradavityProvider:
    """`OAuthAuthorizationServerProvider` over the OAuth store (awaited, off the loop)."""

    def __init__(
        self,
        store: AsyncOAuthStore,
        box: KeyBox,
        documents: ClientDocuments,
        *,
        issuer: str,
        resource: str,
        redirect_hosts: tuple[str, ...],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.box = box
        self.documents = documents
        self.issuer = issuer.rstrip("/")
        self.resource = resource
        self.redirect_hosts = redirect_hosts
        self.clock = clock
        #: Every grant's principal is recorded (see `_name_grants`).
        self._named = False

    # clients

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if is_client_document_url(client_id):
            return await self.documents.get(client_id)
        info = await self.store.client(client_id)
        return OAuthClientInformationFull.model_validate(info) if info else None

    def _origin(self, address: str) -> str:
        """A client address as the store keeps it: a MAC, never the address."""
        return self.box.mac("registering address", address)

    async def proven(self, address: str) -> bool:
        """Whether a client registered from `address` completed an authorization still
        live (registrations from there are then not held to the total)."""
        return await self.store.proven(self._origin(address))

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(u) for u in client_info.redirect_uris or []]
        refused = [u for u in uris if not redirect_allowed(u, self.redirect_hosts)]
        if not uris or refused:
            logger.info("refused a client registration: a redirect URI is not on the allow-list")
            raise RegistrationError(
                "invalid_redirect_uri",
                "redirect URIs must be https on an allowed host ("
                + ", ".join(self.redirect_hosts)
                + ") or http on loopback",
            )
        # Only what this server uses is kept (`bounds`), dropped from this very record:
        # the SDK's handler answers with it, so the response says what was registered.
        for name in type(client_info).model_fields:
            if name not in KEPT_FIELDS and name not in _ISSUED:
                setattr(client_info, name, None)
        client_info.grant_types = [g for g in client_info.grant_types if g in _GRANT_TYPES]
        client_info.response_types = ["code"]
        await self.store.add_client(
            client_info.client_id,
            client_info.model_dump(mode="json", exclude_none=True),
            self._origin(CLIENT_ADDRESS.get()),
        )

    # authorization

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        resource = params.resource or self.resource
        if not same_resource(resource, self.resource):
            raise AuthorizeError("invalid_target", f"this server grants access to {self.resource}")
        # (`client_id`, `redirect_uri` and `state` were bounded before: `endpoints`.)
        problem = scope_problem(params.scopes)
        if problem is not None:
            raise AuthorizeError("invalid_scope", problem)
        problem = challenge_problem(params.code_challenge)
        if problem is not None:
            raise AuthorizeError("invalid_request", problem)
        request_id = await self.store.add_pending(
            Pending(
                client_id=client.client_id,
                # A client registered before names were bounded may have a longer one.
                client_name=(client.client_name or client.client_id)[:MAX_CLIENT_NAME],
                redirect_uri=str(params.redirect_uri),
                redirect_explicit=params.redirect_uri_provided_explicitly,
                code_challenge=params.code_challenge,
                state=params.state,
                resource=self.resource,
                scopes=params.scopes,
            )
        )
        return f"{self.issuer}/consent?request={request_id}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        code = await self.store.code(authorization_code)
        if code is None or code.client_id != client.client_id:
            return None
        if code.used is not None:
            # RFC 6749 4.1.2: a code presented twice revokes what it was exchanged for.
            logger.info("an authorization code was presented twice: its grant is revoked")
            await self.store.revoke(code.grant_id)
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=list(code.scopes),
            expires_at=code.expires,
            client_id=code.client_id,
            code_challenge=code.code_challenge,
            redirect_uri=AnyUrl(code.redirect_uri),
            redirect_uri_provided_explicitly=code.redirect_explicit,
            resource=code.resource,
            subject=code.grant_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        code = await self.store.code(authorization_code.code)
        if code is None or not await self.store.use_code(authorization_code.code):
            if code is not None:
                await self.store.revoke(code.grant_id)
            raise TokenError("invalid_grant", "authorization code already used")
        return self._token_response(await self.store.issue(code.grant_id), code.scopes)

    @staticmethod
    def _token_response(pair: TokenPair, scopes: tuple[str, ...]) -> OAuthToken:
        return OAuthToken(
            access_token=pair.access,
            token_type="Bearer",  # noqa: S106 (the token type, not a secret)
            expires_in=pair.expires_in,
            refresh_token=pair.refresh,
            scope=" ".join(scopes) or None,
        )

    # refresh: rotated on every use; a used one presented again revokes the grant. Two
    # requests rotating one token at once (a retry landing on another replica) are not a
    # replay: the one that spends it gets the next pair, the other invalid_grant, and the
    # grant lives on. A token already spent when a request arrives is a replay.

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        found = await self.store.token(refresh_token, "refresh")
        if found is None:
            return None
        grant_id, expires, used = found
        grant = await self.store.grant(grant_id)
        if grant is None or grant.revoked is not None or grant.client_id != client.client_id:
            return None
        if used is not None:
            logger.info("a used refresh token was presented again: its grant is revoked")
            await self.store.revoke(grant_id)
            return None
        return RefreshToken(
            token=refresh_token,
            client_id=grant.client_id,
            scopes=list(grant.scopes),
            expires_at=int(expires),
            resource=grant.resource,
            subject=grant_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        grant_id = refresh_token.subject or ""
        pair = await self.store.rotate(refresh_token.token, grant_id)
        if pair is None:
            # Spent (or the grant ended) since `load_refresh_token` found it unspent: a
            # concurrent refresh won.
            raise TokenError("invalid_grant", "refresh token already used")
        return self._token_response(pair, tuple(s for s in refresh_token.scopes if s in scopes))

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "only authorization_code and refresh_token")

    # access tokens

    async def _live_access(self, token: str) -> tuple[Grant, float] | None:
        """The unrevoked grant behind an unexpired access token, and when it expires."""
        found = await self.store.token(token, "access")
        if found is None:
            return None
        grant_id, expires, _ = found
        if expires < self.clock():
            return None
        grant = await self.store.grant(grant_id)
        if grant is None or grant.revoked is not None:
            return None
        return grant, expires

    async def load_access_token(self, token: str) -> AccessToken | None:
        live = await self._live_access(token)
        if live is None:
            return None
        grant = live[0]
        return AccessToken(
            token=token,
            client_id=grant.client_id,
            scopes=list(grant.scopes),
            expires_at=int(live[1]),
            resource=grant.resource,
            subject=grant.id,
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        if token.subject:
            await self.store.revoke(token.subject)

    async def key_for(self, principal: str) -> str | None:
        """The key of `principal` a live grant for this server's resource holds, so its
        pending writes can be finished while the user is away; None when no grant holds
        it (a key given as the bearer, a revoked grant) or the store cannot say now."""
        try:
            if not self._named:
                await self._name_grants()
            grants = await self.store.live_grants_of(principal)
        except OAuthStoreUnavailable as exc:
            logger.warning("could not look for a user's grant: %s", exc)
            return None
        for grant in grants:
            if same_resource(grant.resource, self.resource):
                key = self.box.open(grant.key_sealed)
                if key is not None and principal_for_key(key) == principal:
                    return key
        return None

    async def _name_grants(self) -> None:
        """Record the principal of the grants made before grants recorded it: each key
        opened once (in a worker thread: a few thousand grants take a moment of CPU)."""
        unnamed = await self.store.unnamed_grants()

        def names() -> list[tuple[str, str]]:
            out = []
            for grant_id, sealed in unnamed:
                key = self.box.open(sealed)
                out.append((grant_id, principal_for_key(key) if key is not None else ""))
            return out

        for grant_id, principal in await anyio.to_thread.run_sync(names):
            await self.store.name_grant(grant_id, principal)
        self._named = True

    async def resolve(self, token: str) -> Resolved | None:
        """The key behind a live access token issued for this server's resource."""
        live = await self._live_access(token)
        if live is None:
            return None
        grant = live[0]
        if not same_resource(grant.resource, self.resource):
            return None
        key = self.box.open(grant.key_sealed)
        if key is None:
            return None
        await self.store.touch(grant.id)
        return Resolved(grant_id=grant.id, key=key, expires=live[1], scopes=grant.scopes)
