"""Hosted mode: serving MCP over HTTP to agents that are not on this machine.

Two ways to authenticate, both as `Authorization: Bearer ...` on every request:

* **Server token** (`--auth token`, `TRADAVITY_MCP_TOKEN`): one user. Clients present
  a shared secret; the server calls Tradavity with its own `TRADAVITY_API_KEY`.
* **Per user** (`--auth per-user`): each client presents its own Tradavity API key.
  The key is checked against `/me` (and cached briefly); that client's calls use only
  that key, its own cache, and its own ledger entries.

Unauthenticated or wrongly authenticated requests get 401 with a `WWW-Authenticate`
challenge from the SDK. Bound to loopback without `--auth`, the server serves its own
key without authentication, like stdio.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import anyio
from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr

from ..client import TradavityClient
from ..config import API_KEY_PATTERN
from ..errors import TradavityError
from ..ledger import Ledger
from ._refdata import RefData
from ._workspace import Workspace

__all__ = ["CLIENT_ADDRESS", "PerUserVerifier", "ServerTokenVerifier", "Workspaces"]

logger = logging.getLogger("tradavity_mcp.hosted")

#: The network address of the HTTP client being served (set by the HTTP app's guard),
#: for the per-client limits on checking unknown keys.
CLIENT_ADDRESS: ContextVar[str] = ContextVar("tradavity_client_address", default="unknown")

#: How long a verified key is trusted before `/me` is asked again.
VERIFY_TTL_SECONDS = 300.0
#: Most workspaces kept at once; the least recently used is closed beyond this.
MAX_WORKSPACES = 512


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class _Entry:
    workspace: Workspace
    scopes: frozenset[str]
    verified_at: float


class Workspaces:
    """One workspace per principal, created on first verified use."""

    def __init__(
        self,
        *,
        make_client: Callable[[SecretStr], TradavityClient],
        ledger: Ledger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_client = make_client
        self._ledger = ledger
        self._clock = clock
        self._by_token: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = anyio.Lock()

    def get(self, token: str) -> Workspace | None:
        entry = self._by_token.get(_fingerprint(token))
        return entry.workspace if entry is not None else None

    async def verify(self, token: str) -> _Entry | None:
        """The workspace for a Tradavity key, after checking it against `/me`."""
        if not API_KEY_PATTERN.fullmatch(token):
            return None
        fingerprint = _fingerprint(token)
        async with self._lock:
            entry = self._by_token.get(fingerprint)
            if entry is not None and self._clock() - entry.verified_at < VERIFY_TTL_SECONDS:
                self._by_token.move_to_end(fingerprint)
                return entry
        api = entry.workspace.api if entry is not None else self._make_client(SecretStr(token))
        try:
            me = await api.me()
        except TradavityError as exc:
            logger.info("a bearer key was refused by Tradavity: %s", type(exc).__name__)
            if entry is None:
                await api.aclose()
            else:
                await self._drop(fingerprint)
            return None
        async with self._lock:
            if entry is None:
                ws = Workspace(api=api, ledger=self._ledger, ref=RefData(api))
                ws.scopes = me.scopes
                ws.scopes_ready.set()
                entry = _Entry(workspace=ws, scopes=me.scopes, verified_at=self._clock())
            else:
                entry = _Entry(
                    workspace=entry.workspace, scopes=me.scopes, verified_at=self._clock()
                )
            self._by_token[fingerprint] = entry
            self._by_token.move_to_end(fingerprint)
            evicted = []
            while len(self._by_token) > MAX_WORKSPACES:
                evicted.append(self._by_token.popitem(last=False)[1])
        for old in evicted:
            await old.workspace.api.aclose()
        return entry

    async def _drop(self, fingerprint: str) -> None:
        async with self._lock:
            entry = self._by_token.pop(fingerprint, None)
        if entry is not None:
            await entry.workspace.api.aclose()

    def all(self) -> list[Workspace]:
        return [e.workspace for e in self._by_token.values()]

    async def aclose(self) -> None:
        async with self._lock:
            entries = list(self._by_token.values())
            self._by_token.clear()
        for entry in entries:
            await entry.workspace.api.aclose()


class PerUserVerifier:
    """Bearer token = the caller's own Tradavity API key."""

    def __init__(self, workspaces: Callable[[], Workspaces | None]) -> None:
        self._workspaces = workspaces

    async def verify_token(self, token: str) -> AccessToken | None:
        registry = self._workspaces()
        if registry is None:
            return None
        entry = await registry.verify(token)
        if entry is None:
            return None
        return AccessToken(
            token=token,
            client_id=entry.workspace.principal,
            scopes=sorted(entry.scopes),
            subject=entry.workspace.principal,
        )


class ServerTokenVerifier:
    """Bearer token = one shared secret; the server's own API key does the work."""

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret.get_secret_value().encode("utf-8")

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode("utf-8"), self._secret):
            return None
        return AccessToken(token="server-token", client_id="server", scopes=[])  # noqa: S106
