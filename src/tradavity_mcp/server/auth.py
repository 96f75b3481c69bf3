"""Hosted mode: serving MCP over HTTP to agents that are not on this machine.

Three ways to authenticate, all as `Authorization: Bearer ...` on every request:

* **Server token** (`--auth token`, `TRADAVITY_MCP_TOKEN`): one user. Clients present
  a shared secret; the server calls Tradavity with its own `TRADAVITY_API_KEY`.
* **Per user** (`--auth per-user`): each client presents its own Tradavity API key.
  The key is checked against `/me` (and cached briefly); that client's calls use only
  that key, its own cache, and its own ledger entries. Unknown keys cost little: see
  `Workspaces` for the limits on checking them.
* **OAuth** (`--auth oauth`): per user, with the server as its own OAuth 2.1
  authorization server (`oauth`): connectors get opaque tokens on a consent page where
  the user gives their key once; `http.HttpGuard` swaps each token for its key, and from
  there on it is the per-user mode.

Unauthenticated or wrongly authenticated requests get 401 with a `WWW-Authenticate`
challenge from the SDK. Bound to loopback without `--auth`, the server serves its own
key without authentication, like stdio.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal, Protocol

import anyio
from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr
from starlette.responses import JSONResponse, Response

from ..api.client import RetryPolicy, TradavityClient
from ..api.clock import Now
from ..api.errors import TradavityError, Unauthorized
from ..api.models import Me
from ..settings import API_KEY_PATTERN
from .workspace import Workspace

__all__ = [
    "CLIENT_ADDRESS",
    "KeptKeys",
    "KeyMemory",
    "PerUserVerifier",
    "Recalled",
    "ServerTokenVerifier",
    "Workspaces",
    "unauthorized",
]

logger = logging.getLogger("tradavity_mcp.hosted")

#: The network address of the HTTP client being served (set by the HTTP app's guard),
#: for the per-client limits on checking unknown keys.
CLIENT_ADDRESS: ContextVar[str] = ContextVar("tradavity_client_address", default="unknown")

#: How long a verified key is trusted before `/me` is asked again.
VERIFY_TTL_SECONDS = 300.0
#: When `/me` cannot answer for a known key (timeout, outage, 429), trust it this much
#: longer before asking again; only a definite refusal ends a verified key.
REVERIFY_RETRY_SECONDS = 30.0
#: Most workspaces kept at once; the least recently used is closed beyond this.
MAX_WORKSPACES = 512

#: How long one `/me` check may take. It is asked once, never retried: a check that
#: cannot finish now is a 401 now, not a connection held open.
CHECK_TIMEOUT_SECONDS = 3.0
#: How long a key Tradavity refused is refused here without asking again.
REFUSED_TTL_SECONDS = 60.0
#: Most refused keys remembered at once.
MAX_REFUSED = 10_000
#: Concurrent `/me` checks of unknown keys per client address; more wait for a slot...
MAX_CHECKS_PER_CLIENT = 4
#: ...at most this long, then are refused.
SLOT_WAIT_SECONDS = 1.0
#: Unknown keys one client address may have refused per minute. Past this, its new
#: keys are refused without asking Tradavity, which keeps the pre-auth budget the API
#: grants this server (per IP) for the users who have real keys.
PREAUTH_BUDGET_PER_MINUTE = 20
#: Most client addresses tracked at once (the least recently seen are forgotten).
MAX_CLIENTS = 4096


def _fingerprint(token: str) -> str:
    """What a key is known by here and in `KeyMemory`: a one-way digest of it."""
    return hashlib.sha256(b"tradavity-mcp/key-check/v1\0" + token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Recalled:
    """What another replica (or this one) found out about a key, and for how much longer
    it holds."""

    #: The key's scopes when Tradavity accepted it; None when it refused it.
    scopes: frozenset[str] | None
    seconds_left: float


class KeyMemory(Protocol):
    """Key checks shared by every replica (`replicas.keys.RedisKeyMemory` with `--redis`),
    by fingerprint only: a key checked on one replica is not checked again on the
    others while its answer holds. Never raises: what cannot be shared is not."""

    async def recall(self, fingerprint: str) -> Recalled | None: ...

    async def accepted(self, fingerprint: str, scopes: frozenset[str], ttl: float) -> None: ...

    async def refused(self, fingerprint: str, ttl: float) -> None: ...


class KeptKeys(Protocol):
    """Users' keys the server keeps between their visits (`--auth oauth`: each grant
    holds its user's key sealed), looked up by principal, so that their pending writes
    are finished after a restart without waiting for them. Raises nothing: a key that
    cannot be had now is None."""

    async def key_for(self, principal: str) -> str | None: ...


#: The one-attempt policy of key checks.
_CHECK_ONCE = RetryPolicy(max_attempts=1)


@dataclass
class _Entry:
    workspace: Workspace
    scopes: frozenset[str]
    verified_at: float


@dataclass
class _Pending:
    """A check in flight: concurrent requests with the same key wait for its result."""

    done: anyio.Event = field(default_factory=anyio.Event)
    result: _Entry | None = None


@dataclass
class _Client:
    """What we track per client address: its check slots and its recent refusals."""

    slots: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(MAX_CHECKS_PER_CLIENT))
    refusals: deque[float] = field(default_factory=deque)


class Workspaces:
    """One workspace per principal, created on first verified use.

    Unknown keys are what scanners send, so checking them is bounded every way: a key
    Tradavity refused is remembered for a minute; each check is one `/me` request with
    a short timeout and no retries (a 429 is a 401 at once); concurrent requests with
    one key share one check; each client address gets a few checks at a time and a
    small budget of refused keys per minute, after which its new keys are refused
    without asking.

    With `shared` (replicas), each answer of `/me` is also kept there, for as long as
    it holds here, and looked up before asking: one check serves every replica.
    """

    def __init__(
        self,
        *,
        make_client: Callable[[SecretStr], TradavityClient],
        make_workspace: Callable[[TradavityClient], Workspace],
        clock: Now = time.monotonic,
        shared: KeyMemory | None = None,
    ) -> None:
        self._make_client = make_client
        self._make_workspace = make_workspace
        self._clock = clock
        self._shared = shared
        self._by_token: OrderedDict[str, _Entry] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = anyio.Lock()
        #: `/me` requests sent for key checks (for tests and diagnostics).
        self.checks_sent = 0

    def get(self, token: str) -> Workspace | None:
        entry = self._by_token.get(_fingerprint(token))
        return entry.workspace if entry is not None else None

    async def verify(self, token: str) -> _Entry | None:
        """The workspace for a Tradavity key, after checking it against `/me`."""
        if not API_KEY_PATTERN.fullmatch(token):
            return None
        fingerprint = _fingerprint(token)
        now = self._clock()
        entry = self._by_token.get(fingerprint)
        if entry is not None and now - entry.verified_at < VERIFY_TTL_SECONDS:
            self._by_token.move_to_end(fingerprint)
            return entry
        if entry is None and self._still_refused(fingerprint, now):
            return None
        pending = self._pending.get(fingerprint)
        if pending is not None:
            await pending.done.wait()  # bounded by the leader's timeout
            return pending.result
        pending = self._pending[fingerprint] = _Pending()
        try:
            if entry is not None:
                pending.result = await self._reverify(fingerprint, entry)
            else:
                pending.result = await self._check_new(fingerprint, token)
            return pending.result
        finally:
            del self._pending[fingerprint]
            pending.done.set()

    def _still_refused(self, fingerprint: str, now: float) -> bool:
        refused_at = self._refused.get(fingerprint)
        if refused_at is None:
            return False
        if now - refused_at < REFUSED_TTL_SECONDS:
            return True
        del self._refused[fingerprint]
        return False

    def _client(self, address: str) -> _Client:
        state = self._clients.get(address)
        if state is None:
            state = self._clients[address] = _Client()
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(address)
        return state

    def _budget_spent(self, client: _Client, now: float) -> bool:
        while client.refusals and now - client.refusals[0] >= 60.0:
            client.refusals.popleft()
        return len(client.refusals) >= PREAUTH_BUDGET_PER_MINUTE

    async def _recall(self, fingerprint: str) -> Recalled | None:
        return await self._shared.recall(fingerprint) if self._shared is not None else None

    async def _share(self, fingerprint: str, scopes: frozenset[str] | None) -> None:
        if self._shared is None:
            return
        if scopes is None:
            await self._shared.refused(fingerprint, REFUSED_TTL_SECONDS)
        else:
            await self._shared.accepted(fingerprint, scopes, VERIFY_TTL_SECONDS)

    async def _check_new(self, fingerprint: str, token: str) -> _Entry | None:
        known = await self._recall(fingerprint)
        if known is not None:
            # Checked on another replica (or here, before this process forgot it).
            if known.scopes is None:
                self._remember_refused(fingerprint, REFUSED_TTL_SECONDS - known.seconds_left)
                return None
            age = VERIFY_TTL_SECONDS - known.seconds_left
            return await self._admit(fingerprint, token, known.scopes, age)
        address = CLIENT_ADDRESS.get()
        client = self._client(address)
        if self._budget_spent(client, self._clock()):
            logger.info("refused an unknown key unchecked: this client's key budget is spent")
            return None
        acquired = False
        with anyio.move_on_after(SLOT_WAIT_SECONDS):
            await client.slots.acquire()
            acquired = True
        if not acquired:
            logger.info("refused an unknown key: too many key checks from one client")
            return None
        try:
            # The budget may have been spent while this request waited for its slot.
            if self._budget_spent(client, self._clock()):
                return None
            me = await self._ask(token)
        finally:
            client.slots.release()
        if isinstance(me, Me):
            await self._share(fingerprint, me.scopes)
            return await self._admit(fingerprint, token, me.scopes)
        client.refusals.append(self._clock())
        if me == "refused":
            await self._share(fingerprint, None)
            self._remember_refused(fingerprint)
        return None

    async def _ask(self, token: str) -> Me | Literal["refused", "unknown"]:
        """One `/me` request for a key nobody vouched for yet."""
        api = self._make_client(SecretStr(token))
        api.retry = _CHECK_ONCE  # this client is ours alone, and closed after the check
        self.checks_sent += 1
        try:
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                return await api.me()
        except Unauthorized:
            logger.info("a bearer key was refused by Tradavity")
            return "refused"
        except (TradavityError, TimeoutError) as exc:
            logger.info("a bearer key could not be checked now: %s", type(exc).__name__)
            return "unknown"
        finally:
            await api.aclose()

    def _remember_refused(self, fingerprint: str, age: float = 0.0) -> None:
        self._refused[fingerprint] = self._clock() - age
        self._refused.move_to_end(fingerprint)
        while len(self._refused) > MAX_REFUSED:
            self._refused.popitem(last=False)

    async def _admit(
        self, fingerprint: str, token: str, scopes: frozenset[str], age: float = 0.0
    ) -> _Entry:
        """A workspace for a key Tradavity accepted `age` seconds ago."""
        api = self._make_client(SecretStr(token))
        ws = self._make_workspace(api)
        ws.scopes = scopes
        ws.scopes_ready.set()
        entry = _Entry(workspace=ws, scopes=scopes, verified_at=self._clock() - age)
        async with self._lock:
            self._by_token[fingerprint] = entry
            self._by_token.move_to_end(fingerprint)
            evicted = []
            while len(self._by_token) > MAX_WORKSPACES:
                evicted.append(self._by_token.popitem(last=False)[1])
        for old in evicted:
            await old.workspace.api.aclose()
        return entry

    async def _reverify(self, fingerprint: str, entry: _Entry) -> _Entry | None:
        """Ask `/me` again for a key verified earlier; only a definite refusal ends it."""
        known = await self._recall(fingerprint)
        if known is not None and known.scopes is None:
            logger.info("a verified bearer key was refused on another replica")
            await self._drop(fingerprint)
            self._remember_refused(fingerprint, REFUSED_TTL_SECONDS - known.seconds_left)
            return None
        if known is not None and known.scopes is not None:
            self._trust(fingerprint, entry, known.scopes, VERIFY_TTL_SECONDS - known.seconds_left)
            return entry
        try:
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                me = await entry.workspace.api.me()
        except Unauthorized:
            logger.info("a verified bearer key is no longer accepted by Tradavity")
            await self._drop(fingerprint)
            await self._share(fingerprint, None)
            self._remember_refused(fingerprint)
            return None
        except (TradavityError, TimeoutError) as exc:
            logger.info("could not re-check a bearer key now (%s); trusting it", type(exc).__name__)
            entry.verified_at = self._clock() - VERIFY_TTL_SECONDS + REVERIFY_RETRY_SECONDS
            return entry
        await self._share(fingerprint, me.scopes)
        self._trust(fingerprint, entry, me.scopes)
        return entry

    def _trust(
        self, fingerprint: str, entry: _Entry, scopes: frozenset[str], age: float = 0.0
    ) -> None:
        entry.workspace.scopes = scopes
        entry.scopes = scopes
        entry.verified_at = self._clock() - age
        if fingerprint in self._by_token:
            self._by_token.move_to_end(fingerprint)

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


def unauthorized(public_url: str) -> Response:
    """401 with the pointer to our OAuth resource metadata."""
    metadata = public_url.rstrip("/") + "/.well-known/oauth-protected-resource/mcp"
    return JSONResponse(
        {"error": "invalid_token", "error_description": "send Authorization: Bearer <token>"},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", resource_metadata="{metadata}"'
        },
    )
