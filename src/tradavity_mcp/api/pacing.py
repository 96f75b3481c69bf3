"""Client-side pacing against the API's 60-second sliding window.

The API counts every request (replays and 4xx included) in a rolling 60 s window per
key, and another per user. Rather than fire a request we already know will get a 429,
the pacer waits for a slot. It combines two views of the window:

* our own send times over the last 60 s (exact for what we sent), and
* the server's `remaining` from the newest response, less what we sent since
  (covers other clients using the same key).

Until the first response tells us the tier, it assumes the smallest documented limit.

Where the send times are kept is a seam (`SendWindow`): this process's memory by default
(`LocalWindow`), or a store several replicas share (the server's Redis window), so that
every process using one key takes its slots from one window.
"""

from __future__ import annotations

import bisect
import collections
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio

from .clock import Clock

__all__ = ["LocalWindow", "RateLimitPacer", "RateLimitState", "SendWindow"]

WINDOW_SECONDS = 60.0
DEFAULT_LIMIT = 60  # the free tier, the smallest documented per-key limit


@dataclass(frozen=True)
class RateLimitState:
    """The newest rate-limit picture, as the API reported it."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    tier: str | None = None
    user_ceiling: int | None = None
    user_remaining: int | None = None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_rate_limit(
    headers: Mapping[str, str], meta: Mapping[str, Any] | None
) -> RateLimitState | None:
    """Read the window from the `X-RateLimit-*` headers, completed by `meta.rate_limit`."""
    body = meta.get("rate_limit") if meta else None
    body = body if isinstance(body, Mapping) else {}
    limit = _int(headers.get("x-ratelimit-limit")) or _int(body.get("limit"))
    remaining = _int(headers.get("x-ratelimit-remaining"))
    if remaining is None:
        remaining = _int(body.get("remaining"))
    reset = _int(headers.get("x-ratelimit-reset"))
    if limit is None and remaining is None:
        return None
    return RateLimitState(
        limit=limit,
        remaining=remaining,
        reset_at=float(reset) if reset is not None else None,
        tier=str(body["tier"]) if body.get("tier") is not None else None,
        user_ceiling=_int(body.get("user_ceiling")),
        user_remaining=_int(body.get("user_remaining")),
    )


class SendWindow(Protocol):
    """Where one key's sends over the last `WINDOW_SECONDS` are kept: this process's
    memory (`LocalWindow`), or a store every replica using the key shares.

    A send is dated twice: when its slot is taken (before the request goes out), then
    when its answer (or failure) came back, the latest the API can have counted it. So
    a slow request never frees its slot before the API frees it.
    """

    async def take(self, now: float, limit: int | None, send: str) -> float | None:
        """Take a slot: when fewer than `limit` sends fall in the window ending at `now`
        (and no hold is on), record the send `send` (a unique id) at `now` and return
        None; otherwise record nothing and return when to ask again. Atomic: two takers
        never both get the last slot.

        `limit` is the key's limit as the API last told this taker, or None before any
        answer did: a shared window then goes by the limit another taker learned, and
        only failing that by `DEFAULT_LIMIT`."""
        ...

    async def settle(self, send: str, now: float) -> None:
        """The request of `send` was answered, or failed, by `now`: date it so."""
        ...

    async def hold(self, until: float) -> None:
        """A 429 said no slot frees before `until`: every taker waits until then."""
        ...


class LocalWindow:
    """The sends in this process's memory: the default, one process alone."""

    def __init__(self) -> None:
        # (time, send id), oldest first.
        self._sent: list[tuple[float, str]] = []
        self._held_until: float | None = None

    async def take(self, now: float, limit: int | None, send: str) -> float | None:
        return self.take_now(now, limit or DEFAULT_LIMIT, send)

    async def settle(self, send: str, now: float) -> None:
        self.settle_now(send, now)

    async def hold(self, until: float) -> None:
        self.hold_now(until)

    def take_now(self, now: float, limit: int, send: str) -> float | None:
        """`take`, without waiting on anything (no I/O)."""
        if self._held_until is not None and now < self._held_until:
            return self._held_until
        old = bisect.bisect_right(self._sent, (now - WINDOW_SECONDS, "\uffff"))
        del self._sent[:old]
        if len(self._sent) < limit:
            bisect.insort(self._sent, (now, send))
            return None
        # The slot that frees next is the one that takes the window below the limit.
        return self._sent[len(self._sent) - limit][0] + WINDOW_SECONDS

    def settle_now(self, send: str, now: float) -> None:
        for i, (when, name) in enumerate(self._sent):
            if name == send:
                if when < now:
                    del self._sent[i]
                    bisect.insort(self._sent, (now, send))
                return

    def hold_now(self, until: float) -> None:
        self._held_until = max(until, self._held_until or 0.0)


class RateLimitPacer:
    """Hands out send slots; every wait for the window, 429s included, happens here.

    The slots come from a `SendWindow` (this process's, unless one shared by replicas
    is given); the server's `remaining` is checked here, against this pacer's own sends.
    """

    def __init__(self, clock: Clock, window: SendWindow | None = None) -> None:
        self._clock = clock
        self._window: SendWindow = window if window is not None else LocalWindow()
        self._lock = anyio.Lock()
        # This pacer's own sends over the last minute (when the server's figure frees).
        self._sent: collections.deque[float] = collections.deque()
        self._state = RateLimitState()
        # Requests we sent after the response that `_state` came from.
        self._sent_since_state = 0
        # Set by a 429: nothing is sent before this time.
        self._blocked_until: float | None = None
        # A 429's hold not told to the window yet (it holds the window's other users).
        self._hold: float | None = None

    @property
    def state(self) -> RateLimitState:
        return self._state

    def _forget_remaining(self) -> None:
        # Once a slot has had time to free, the server's last figure is stale: be
        # optimistic for one request and let its response correct us.
        self._state = replace(self._state, remaining=None, user_remaining=None)
        self._sent_since_state = 0

    def _own_wait(self, now: float) -> float | None:
        """What this pacer alone knows: a 429's hold, and the server's `remaining` less
        what we sent since. None when neither stops a request now, else when to look again."""
        if self._blocked_until is not None:
            if now < self._blocked_until:
                return self._blocked_until
            self._blocked_until = None
            self._forget_remaining()
        while self._sent and self._sent[0] <= now - WINDOW_SECONDS:
            self._sent.popleft()
        known = [r for r in (self._state.remaining, self._state.user_remaining) if r is not None]
        if not known or min(known) - self._sent_since_state > 0:
            return None
        if self._sent:
            return self._sent[0] + WINDOW_SECONDS
        return self._state.reset_at if self._state.reset_at else now + 1.0

    async def acquire(self) -> str:
        """Wait until a request can be sent without exceeding the known window; the
        send's id, for `settle` once it is answered."""
        send = secrets.token_hex(8)
        async with self._lock:
            if self._hold is not None:
                hold, self._hold = self._hold, None
                await self._window.hold(hold)
            while True:
                now = self._clock.now()
                next_slot = self._own_wait(now)
                if next_slot is None:
                    next_slot = await self._window.take(now, self._state.limit, send)
                    if next_slot is None:
                        break
                await self._clock.sleep(max(0.05, next_slot - self._clock.now()))
                if self._blocked_until is None:
                    self._forget_remaining()
            self._sent.append(now)
            self._sent_since_state += 1
        return send

    async def settle(self, send: str) -> None:
        """The request sent as `send` was answered, or failed: it holds its slot until a
        window after now (the API counted it on arrival, at the latest now)."""
        await self._window.settle(send, self._clock.now())

    def observe(self, state: RateLimitState | None) -> None:
        """Take the window from a response (call after every response)."""
        if state is None:
            return
        self._state = state
        self._sent_since_state = 0

    def block(self, seconds: float) -> None:
        """A 429 said one slot frees in `seconds`: hold every request until then (and,
        through the window, from this pacer's next `acquire` on, its other users too)."""
        until = self._clock.now() + max(seconds, 0.05)
        self._blocked_until = max(until, self._blocked_until or 0.0)
        self._hold = max(until, self._hold or 0.0)
