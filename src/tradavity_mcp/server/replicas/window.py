"""One rate window per API key, shared by every replica through Redis (`--redis`).

The API counts a key's requests in a 60-second sliding window, whichever replica sends
them. Each replica's pacer (`api.pacing.RateLimitPacer`) therefore takes its slots from
one window per key kept in Redis: a sorted set of send times under the key's principal
(`api.idempotency.principal_for_key`, a one-way fingerprint; the key itself is never
stored), a 429's hold and the key's limit as the API last told any replica beside it (so
a replica new to a busy key paces by the limit the others learned, not the smallest
tier's). One Lua script drops the sends older than the
window, counts the rest and records the new send only if there is room, so two replicas
never both get the last slot. A send is dated when its slot is taken, then again when
its answer comes (see `SendWindow`).

Send times are read from the server's one clock (`Connection.clock`): replicas must agree
on the time (NTP); a skew of s seconds between two replicas shifts the edge of the
window by s for their sends.

When Redis does not answer, a replica paces on its own window (kept warm with its own
sends while Redis answers) and the server's `remaining`, as a single process does, and
says so once on stderr; it asks Redis again every few seconds. Failing the calls
instead would turn a Redis outage into a Tradavity outage for every user, while the
API's own 429s (absorbed here, with their Retry-After shared again once Redis is back)
still bound what the replicas send meanwhile. Nothing is ever sent without a slot from
one window or the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ...api.pacing import DEFAULT_LIMIT, WINDOW_SECONDS, LocalWindow, SendWindow

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["PREFIX", "RedisOutage", "RedisWindow", "redis_windows"]

logger = logging.getLogger("tradavity_mcp.shared")

#: Every key this server keeps in Redis starts with this.
PREFIX = "tradavity-mcp:"
#: After Redis failed, how long (real seconds) a replica keeps to its own window before
#: asking Redis again.
RETRY_SECONDS = 3.0
#: Redis forgets an idle window or hold after this long (real seconds): only to collect
#: garbage; the script itself drops sends older than the window.
IDLE_TTL_SECONDS = 3600

# KEYS: the window (sorted set), the hold, the known limit. ARGV: now, window seconds,
# limit (empty: not known to this replica; the stored one, else the default), member, idle
# TTL, default limit. Returns {1, ""} when the send was recorded; {2, until} while a hold
# is on; else {0, the send time whose ageing out frees the next slot}.
_TAKE = """
local now = tonumber(ARGV[1])
local held = redis.call('GET', KEYS[2])
if held and now < tonumber(held) then
  return {2, held}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local limit = tonumber(ARGV[3])
if limit then
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[5])
else
  limit = tonumber(redis.call('GET', KEYS[3]) or ARGV[6])
end
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return {1, ''}
end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return {0, oldest[2]}
"""

# KEYS: the hold. ARGV: until, idle TTL. A later hold replaces an earlier one only.
_HOLD = """
local held = redis.call('GET', KEYS[1])
if (not held) or tonumber(held) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


class RedisOutage:
    """Whether Redis answers, for everything a replica shares through it: one line on
    stderr when it stops answering and one when it is back, and a pause between tries
    (`monotonic`: real time, whatever clock the server reads)."""

    def __init__(self, url: str, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.where = _redacted(url)
        self._monotonic = monotonic
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        """True while a recent failure says not to ask Redis yet."""
        return self._down_since is not None and self._monotonic() < self._retry_at

    def failed(self, exc: BaseException, fallback: str) -> None:
        now = self._monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "Redis %s does not answer (%s): %s until it does",
                self.where,
                _described(exc),
                fallback,
            )
        self._retry_at = now + RETRY_SECONDS

    def answered(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "Redis %s answers again (after %.0f s): shared state in use again",
                self.where,
                self._monotonic() - self._down_since,
            )
            self._down_since = None


class RedisWindow:
    """`SendWindow` for one key, in Redis; this replica's own window while Redis is away."""

    def __init__(self, redis: Redis, principal: str, outage: RedisOutage) -> None:
        self._redis = redis
        rate = f"{PREFIX}rate:{principal}"
        self._keys = [rate, f"{rate}:hold", f"{rate}:limit"]
        self._outage = outage
        self._local = LocalWindow()

    async def take(self, now: float, limit: int | None, send: str) -> float | None:
        if not self._outage.down:
            args: list[Any] = [
                repr(now), repr(WINDOW_SECONDS), limit or "", send, IDLE_TTL_SECONDS,
                DEFAULT_LIMIT,
            ]  # fmt: skip
            try:
                answer, time_text = await self._redis.eval(_TAKE, 3, *self._keys, *args)
            except (RedisError, OSError) as exc:
                self._outage.failed(exc, _FALLBACK)
            else:
                self._outage.answered()
                if answer == _HELD:
                    return float(time_text)
                if answer == _FULL:
                    return float(time_text) + WINDOW_SECONDS
                # Kept warm, so that if Redis goes away this replica knows its own sends.
                self._local.take_now(now, _UNLIMITED, send)
                return None
        return self._local.take_now(now, limit or DEFAULT_LIMIT, send)

    async def settle(self, send: str, now: float) -> None:
        self._local.settle_now(send, now)
        if self._outage.down:
            return
        try:
            # GT: a send is only ever dated later (and added back if it aged out meanwhile).
            await self._redis.zadd(self._keys[0], {send: now}, gt=True)
        except (RedisError, OSError) as exc:
            self._outage.failed(exc, _FALLBACK)
        else:
            self._outage.answered()

    async def hold(self, until: float) -> None:
        self._local.hold_now(until)
        if self._outage.down:
            return
        try:
            await self._redis.eval(_HOLD, 1, self._keys[1], repr(until), IDLE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            self._outage.failed(exc, _FALLBACK)
        else:
            self._outage.answered()


_FULL, _HELD = 0, 2
_FALLBACK = "each API key is paced on this replica's own window and the API's figures"
_UNLIMITED = 1 << 30


def redis_windows(redis: Redis, url: str) -> Callable[[str], SendWindow]:
    """The window of each key (by principal) for this replica's API clients."""
    outage = RedisOutage(url)

    def window(principal: str) -> SendWindow:
        return RedisWindow(redis, principal, outage)

    return window


def _redacted(url: str) -> str:
    from ..writes.store_pg import redact_url  # noqa: PLC0415 (psycopg only when used)

    return redact_url(url)


def _described(exc: BaseException) -> str:
    from ..writes.store_pg import described  # noqa: PLC0415 (psycopg only when used)

    return described(exc)
