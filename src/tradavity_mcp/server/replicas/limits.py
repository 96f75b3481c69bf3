"""The OAuth server's rate limits as one for every replica, through Redis (`--redis`).

`--auth oauth` limits dynamic client registrations (per client address and in all, per
hour), authorization requests and client metadata documents fetched (per address, per
minute) and the wrong keys tried on the consent page (per consent request, and per
address and in all per minute: each is a `/me` request to Tradavity; a key Tradavity
accepts is withdrawn and counts for nothing). Kept in each process, N replicas behind a
load balancer would let N times as much through. Here each limit is a sliding log in
Redis: a sorted set of admission times per address and one for all, on Redis's own clock
(so the replicas' clocks do not matter). One Lua script drops what is older than the
window, and admits only if both counts are under their limits, recording the admission
in both: two replicas never both get the last place. (An admission outside the total,
`overall=False`, is checked and recorded in the address's log only.) A withdrawal
removes the admission (its ticket) from both.

Addresses are kept as a one-way digest. Redis away: each replica admits by its own limit
(as without `--redis`, the budget once per replica) and says so once on stderr.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from ..oauth.clients import Admission, RateLimit, SharedLimits
from .window import PREFIX, RedisOutage

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRateLimit", "redis_limits"]

_FALLBACK = "each replica applies the OAuth rate limits on its own"

# KEYS: the address's log, the total's log. ARGV: window (ms), per address, total (empty:
# the total is not asked), member. Returns 1 when admitted (and recorded in the logs
# asked), else 0.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local total = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
if total then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  if redis.call('ZCARD', KEYS[2]) >= total then
    return 0
  end
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], window)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


class RedisRateLimit:
    """One of the OAuth server's limits (`name`), shared; `local` while Redis is away."""

    def __init__(self, redis: Redis, name: str, local: RateLimit, outage: RedisOutage) -> None:
        self._redis = redis
        self._key = f"{PREFIX}limit:{name}"
        self._local = local
        self._outage = outage

    def _keys(self, address: str) -> list[str]:
        digest = hashlib.sha256(address.encode()).hexdigest()[:32]
        return [f"{self._key}:{digest}", f"{self._key}:all"]

    async def admit(self, address: str, ticket: str = "", *, overall: bool = True) -> bool:
        if not self._outage.down:
            total = self._local.total if overall else None
            args: list[int | str] = [
                round(self._local.window * 1000),
                self._local.per_address,
                "" if total is None else total,
                ticket or uuid.uuid4().hex,
            ]
            try:
                admitted = await self._redis.eval(_ADMIT, 2, *self._keys(address), *args)
            except (RedisError, OSError) as exc:
                self._outage.failed(exc, _FALLBACK)
            else:
                self._outage.answered()
                return bool(admitted)
        return self._local.allow(address, ticket, overall=overall)

    async def withdraw(self, address: str, ticket: str) -> None:
        # Admitted here or, while Redis was away, by the local limit: taken back from both.
        self._local.take_back(address, ticket)
        if self._outage.down or not ticket:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in self._keys(address):
                    pipe.zrem(key, ticket)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._outage.failed(exc, _FALLBACK)
        else:
            self._outage.answered()


def redis_limits(redis: Redis, url: str) -> SharedLimits:
    """The OAuth server's limits in `redis`, one outage watch for all of them."""
    outage = RedisOutage(url)

    def shared(name: str, local: RateLimit) -> Admission:
        return RedisRateLimit(redis, name, local, outage)

    return shared
