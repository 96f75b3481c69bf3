"""Hosted mode: serving MCP over HTTP to agents that are not on this machine.

Three ways to authenticate, all as `Authorization: Bearer ...` on every request:

* **Server token** (`--auth token`, `TRADAVITY_MCP_TOKEN`): one user. Clients present
  a shared secret; the server calls Tradavity with its own `TRADAVITY_API_KEY`.
* **Per user** (`--auth per-user`): each client presents its own Tradavity API key.
  The key is checked against `/me` (and cached briefly); that client's calls use only
  that key, its own cache, and its own ledger entries. Unknown keys cost little, and a
  key Tradavity accepts is never turned away by what they cost: see `Workspaces`.
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
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
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
    "GRANTED",
    "Granted",
    "KeptKeys",
    "KeyMemory",
    "PerUserVerifier",
    "Recalled",
    "ServerTokenVerifier",
    "Workspaces",
    "address_key",
    "granted",
    "unauthorized",
]

logger = logging.getLogger("tradavity_mcp.hosted")

#: The HTTP client being served, as every per-client limit counts it (`address_key` of
#: its network address; set by the HTTP app's guard): checking unknown keys here, and the
#: OAuth server's limits. Behind a load balancer it is the client's own address only with
#: `--trusted-proxy` (uvicorn then takes it from `X-Forwarded-For`); otherwise the
#: balancer's.
CLIENT_ADDRESS: ContextVar[str] = ContextVar("tradavity_client_address", default="unknown")


def address_key(address: str) -> str:
    """What the per-client limits count an address as: an IPv4 address as it is; an
    IPv6 address by its /64, the block one subscriber or host is given (one machine can
    use any of its 2**64 addresses, so counting each alone would let it through
    unlimited); an IPv4-mapped IPv6 address as its IPv4. Anything else (no address
    known) as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
#: The refusal budget of one client address: checks that did not end in an accepted key
#: (refused, or unanswered) it may spend at once...
REFUSAL_BUDGET = 20
#: ...and one more every this many seconds (20 a minute, kept up). It guards the
#: pre-auth budget the API grants this server's address (100 unknown keys a minute) for
#: the users who have real keys.
REFUSAL_REFILL_SECONDS = 3.0
#: How long a new key waits for its address's budget when it is spent: longer than one
#: refill, so a key that waits alone is always checked.
BUDGET_WAIT_SECONDS = 4.0
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


@dataclass(frozen=True)
class Granted:
    """A key this server's OAuth store vouches for: a user gave it on the consent page,
    Tradavity accepted it then (with these scopes), and a live access token stands for it.
    It is no stranger's guess, so checking it spends no refusal budget."""

    fingerprint: str
    scopes: frozenset[str]


#: The key the current request's OAuth access token stood for (set by the HTTP guard
#: when it swaps the token for the key), or None.
GRANTED: ContextVar[Granted | None] = ContextVar("tradavity_granted_key", default=None)


def granted(key: str, scopes: Iterable[str]) -> Granted:
    """What `GRANTED` holds for a key a live grant unlocked."""
    return Granted(fingerprint=_fingerprint(key), scopes=frozenset(scopes))


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
class _Budget:
    """A client address's refusal budget: a bucket of `REFUSAL_BUDGET` tokens, refilled
    one every `REFUSAL_REFILL_SECONDS`."""

    level: float
    at: float

    def fill(self, now: float) -> None:
        self.level = min(REFUSAL_BUDGET, self.level + (now - self.at) / REFUSAL_REFILL_SECONDS)
        self.at = now

    def take(self, now: float) -> bool:
        self.fill(now)
        if self.level < 1:
            return False
        self.level -= 1
        return True

    def give_back(self) -> None:
        self.level = min(REFUSAL_BUDGET, self.level + 1)

    def seconds_to_next(self, now: float) -> float:
        self.fill(now)
        return max(0.0, (1 - self.level) * REFUSAL_REFILL_SECONDS)


@dataclass
class _Client:
    """What we track per client address: its refusal budget, its checks under way, and
    the keys waiting for a token, first come first served."""

    budget: _Budget
    #: Checks under way that took a token (each gives it back if its key is accepted).
    checking: int = 0
    #: The keys waiting, in order (each stands for itself).
    line: list[object] = field(default_factory=list)
    #: Set (and replaced) whenever a check ends or the line moves.
    changed: anyio.Event = field(default_factory=anyio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class Workspaces:
    """One workspace per principal, created on first verified use.

    Unknown keys are what scanners send, so checking them is bounded every way: a key
    Tradavity refused is remembered for a minute; each check is one `/me` request with
    a short timeout and no retries (a 429 is a 401 at once); concurrent requests with
    one key share one check.

    What the checks cost is charged to the client address they came from, and only for
    keys that were not accepted: each address has a refusal budget (`_Budget`: 20 at once,
    then one every 3 s). A check takes a token from it before asking `/me`, and gives it
    back when Tradavity accepts the key, so a real key costs nothing, however many junk
    keys came before it. When the budget is spent, a new key is not refused: it waits
    (`BUDGET_WAIT_SECONDS`, longer than a refill) for the next token and is then checked;
    keys behind it wait only while checks under way could give a token back (`_spend`),
    the others are refused unchecked at once. So a scanner gets at most 20 keys at once,
    then 20 a minute, to the API from each address, however many it sends, and holds one
    connection open doing so; and a real key is refused by the budget only when it
    arrives while the address's budget is spent and another new key from that very
    address is already waiting (a flood from there at that moment).

    Keys already verified are not checked again until `VERIFY_TTL_SECONDS`, and keys an
    OAuth grant vouches for (`GRANTED`: they came out of our own store, not from a guess)
    are checked without the budget; when `/me` cannot answer for a granted key, its
    grant's scopes stand in until the next check. Behind a load balancer the address is
    the client's own only with `--trusted-proxy`; otherwise all its clients share one
    budget, the balancer's.

    With `shared` (replicas), each answer of `/me` is also kept there, for as long as
    it holds here, and looked up before asking: one check serves every replica. The
    budgets are each replica's own.
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
        #: Keys Tradavity refused: when, and its code (`key_revoked`, `key_expired`, ...).
        self._refused: OrderedDict[str, tuple[float, str]] = OrderedDict()
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
            await pending.done.wait()  # bounded by the leader's budget wait and timeout
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

    def refusal(self, token: str) -> str:
        """Why `verify` turned this key away, in words for the 401 (never the key)."""
        if not API_KEY_PATTERN.fullmatch(token):
            return NOT_A_KEY
        refused = self._refused.get(_fingerprint(token))
        if refused is None:
            return UNCHECKED
        return REFUSED_BECAUSE.get(refused[1], REFUSED_BECAUSE["unauthorized"])

    def _still_refused(self, fingerprint: str, now: float) -> bool:
        refused = self._refused.get(fingerprint)
        if refused is None:
            return False
        if now - refused[0] < REFUSED_TTL_SECONDS:
            return True
        del self._refused[fingerprint]
        return False

    def _client(self, address: str) -> _Client:
        state = self._clients.get(address)
        if state is None:
            budget = _Budget(level=REFUSAL_BUDGET, at=self._clock())
            state = self._clients[address] = _Client(budget)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(address)
        return state

    async def _spend(self, client: _Client) -> bool:
        """A token of `client`'s refusal budget, at once or after a short wait; False (at
        once) when no token can come to this key in time, or none came.

        The first key in line waits for the next refill (`BUDGET_WAIT_SECONDS` is longer
        than one); each key behind it waits only while a check under way could give a
        token back (an accepted key does). So a burst of real keys is checked in full,
        while a flood of junk holds one connection, not hundreds."""
        if not client.line and client.budget.take(self._clock()):
            client.checking += 1
            return True
        if len(client.line) > client.checking:
            return False
        me = object()
        client.line.append(me)
        try:
            with anyio.move_on_after(BUDGET_WAIT_SECONDS):
                while True:
                    position = client.line.index(me)
                    if position == 0 and client.budget.take(self._clock()):
                        client.checking += 1
                        return True
                    if position > client.checking:
                        return False
                    changed = client.changed
                    wait = (
                        client.budget.seconds_to_next(self._clock())
                        if position == 0
                        else BUDGET_WAIT_SECONDS
                    )
                    with anyio.move_on_after(wait):
                        await changed.wait()
            return False
        finally:
            client.line.remove(me)
            client.notify()

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
                self._remember_refused(
                    fingerprint, REFUSED_TTL_SECONDS - known.seconds_left, "elsewhere"
                )
                return None
            age = VERIFY_TTL_SECONDS - known.seconds_left
            return await self._admit(fingerprint, token, known.scopes, age)
        vouched = GRANTED.get()
        if vouched is not None and vouched.fingerprint == fingerprint:
            return await self._check_granted(fingerprint, token, vouched)
        client = self._client(CLIENT_ADDRESS.get())
        if not await self._spend(client):
            logger.info("refused an unknown key unchecked: this client's refusal budget is spent")
            return None
        me: Me | Unauthorized | Literal["unknown"] = "unknown"
        try:
            me = await self._ask(token)
        finally:
            client.checking -= 1
            if isinstance(me, Me):
                client.budget.give_back()  # a key Tradavity accepts costs nothing
            client.notify()
        settled = await self._settle(fingerprint, token, me)
        return None if settled == "unknown" else settled

    async def _check_granted(self, fingerprint: str, token: str, vouched: Granted) -> _Entry | None:
        """A key an OAuth grant vouches for, new to this process (after a restart, say):
        checked without the budget; when `/me` cannot answer, the grant's scopes stand in
        until the next check."""
        settled = await self._settle(fingerprint, token, await self._ask(token))
        if settled != "unknown":
            return settled
        logger.info("a granted key could not be checked now; its grant's scopes stand in")
        age = VERIFY_TTL_SECONDS - REVERIFY_RETRY_SECONDS
        return await self._admit(fingerprint, token, vouched.scopes, age)

    async def _settle(
        self, fingerprint: str, token: str, me: Me | Unauthorized | Literal["unknown"]
    ) -> _Entry | Literal["unknown"] | None:
        """What `/me` said of a new key, acted on: admitted (and shared), refused (and
        remembered), or "unknown" when it could not answer."""
        if isinstance(me, Me):
            await self._share(fingerprint, me.scopes)
            return await self._admit(fingerprint, token, me.scopes)
        if isinstance(me, Unauthorized):
            await self._share(fingerprint, None)
            self._remember_refused(fingerprint, reason=me.code)
            return None
        return "unknown"

    async def _ask(self, token: str) -> Me | Unauthorized | Literal["unknown"]:
        """One `/me` request for a key not verified in this process yet."""
        api = self._make_client(SecretStr(token))
        api.retry = _CHECK_ONCE  # this client is ours alone, and closed after the check
        self.checks_sent += 1
        try:
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                return await api.me()
        except Unauthorized as exc:
            logger.info("a bearer key was refused by Tradavity (%s)", exc.code)
            return exc
        except (TradavityError, TimeoutError) as exc:
            logger.info("a bearer key could not be checked now: %s", type(exc).__name__)
            return "unknown"
        finally:
            await api.aclose()

    def _remember_refused(
        self, fingerprint: str, age: float = 0.0, reason: str = "unauthorized"
    ) -> None:
        self._refused[fingerprint] = (self._clock() - age, reason)
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
            self._remember_refused(
                fingerprint, REFUSED_TTL_SECONDS - known.seconds_left, "elsewhere"
            )
            return None
        if known is not None and known.scopes is not None:
            self._trust(fingerprint, entry, known.scopes, VERIFY_TTL_SECONDS - known.seconds_left)
            return entry
        try:
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                me = await entry.workspace.api.me()
        except Unauthorized as exc:
            logger.info("a verified bearer key is no longer accepted by Tradavity (%s)", exc.code)
            await self._drop(fingerprint)
            await self._share(fingerprint, None)
            self._remember_refused(fingerprint, reason=exc.code)
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

    def refusal(self, token: str) -> str:
        """Why this key was turned away: revoked, expired, unknown, or not checked."""
        registry = self._workspaces()
        return registry.refusal(token) if registry is not None else UNCHECKED

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

    def refusal(self, token: str) -> str:
        return WRONG_TOKEN

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode("utf-8"), self._secret):
            return None
        return AccessToken(token="server-token", client_id="server", scopes=[])  # noqa: S106


#: What a 401 says, by why the bearer was turned away. Plain ASCII without quotes: each
#: goes into `WWW-Authenticate` as its `error_description`, and into the body.
NO_TOKEN = "no credentials: send Authorization: Bearer <your Tradavity API key or token>"  # noqa: S105 (words, not a secret)
NOT_A_KEY = (
    "this is not a Tradavity API key (tvty_ followed by 48 characters): copy it again "
    "from Tradavity -> Settings -> API"
)
UNCHECKED = (
    "this key could not be checked just now (Tradavity did not answer, or too many unknown "
    "keys came from this address): try again in a minute"
)
WRONG_TOKEN = "this is not the server's token: ask whoever runs this server for it"  # noqa: S105
EXPIRED_TOKEN = (
    "this access token has expired, was revoked or is unknown here: connect again to sign in"  # noqa: S105
)
REFUSED_BECAUSE = {
    "key_revoked": "this Tradavity API key was revoked: create a new one in Tradavity -> "
    "Settings -> API",
    "key_expired": "this Tradavity API key has expired: create a new one in Tradavity -> "
    "Settings -> API",
    "unauthorized": "Tradavity does not know this API key (mistyped, or deleted): copy it "
    "again from Tradavity -> Settings -> API",
    "elsewhere": "Tradavity refused this API key (unknown, revoked or expired): check it in "
    "Tradavity -> Settings -> API",
}


def unauthorized(public_url: str, why: str = NO_TOKEN) -> Response:
    """401 saying `why`, with the pointer to our OAuth resource metadata."""
    metadata = public_url.rstrip("/") + "/.well-known/oauth-protected-resource/mcp"
    return JSONResponse(
        {"error": "invalid_token", "error_description": why},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{why}", '
            f'resource_metadata="{metadata}"'
        },
    )
