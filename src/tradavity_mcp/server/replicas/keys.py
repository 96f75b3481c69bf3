"""Key checks shared by replicas through Redis (`--redis`): `auth.KeyMemory`.

In per-user mode every bearer key is checked against `/me` (`auth.Workspaces`). With
several replicas behind a load balancer, each would check each key again; here the
answer is kept in Redis for as long as it holds (a key Tradavity accepted, with its
scopes, for the verified period; a key it refused, for the refusal period), so one check
serves them all.

Keys are known by `auth._fingerprint`, a one-way digest: Redis never holds a key, nor
anything a key could be recovered from. Only the scopes are stored beside it.

Redis away: each replica checks keys on its own, as without `--redis` (an extra `/me`
per key and replica, nothing worse), and says so once on stderr.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from ..auth import Recalled
from .window import PREFIX, RedisOutage

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisKeyMemory"]

_FALLBACK = "each replica checks bearer keys against /me on its own"


class RedisKeyMemory:
    """`auth.KeyMemory` in Redis, with Redis's own expiry (real seconds)."""

    def __init__(self, redis: Redis, url: str) -> None:
        self._redis = redis
        self._outage = RedisOutage(url)

    @staticmethod
    def _names(fingerprint: str) -> tuple[str, str]:
        return f"{PREFIX}key:accepted:{fingerprint}", f"{PREFIX}key:refused:{fingerprint}"

    async def recall(self, fingerprint: str) -> Recalled | None:
        if self._outage.down:
            return None
        accepted, refused = self._names(fingerprint)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(accepted)
                pipe.pttl(accepted)
                pipe.pttl(refused)
                scopes_json, accepted_ms, refused_ms = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._outage.failed(exc, _FALLBACK)
            return None
        self._outage.answered()
        if refused_ms is not None and refused_ms > 0:
            return Recalled(scopes=None, seconds_left=refused_ms / 1000)
        if scopes_json is None or accepted_ms is None or accepted_ms <= 0:
            return None
        try:
            scopes = json.loads(scopes_json)
        except ValueError:
            return None
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            return None
        return Recalled(scopes=frozenset(scopes), seconds_left=accepted_ms / 1000)

    async def accepted(self, fingerprint: str, scopes: frozenset[str], ttl: float) -> None:
        accepted, refused = self._names(fingerprint)
        await self._write(accepted, json.dumps(sorted(scopes)), ttl, refused)

    async def refused(self, fingerprint: str, ttl: float) -> None:
        accepted, refused = self._names(fingerprint)
        await self._write(refused, "1", ttl, accepted)

    async def _write(self, name: str, value: str, ttl: float, instead_of: str) -> None:
        """Set `name` for `ttl` seconds, and drop the opposite answer, at once."""
        if self._outage.down:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, value, px=max(1, round(ttl * 1000)))
                pipe.delete(instead_of)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._outage.failed(exc, _FALLBACK)
        else:
            self._outage.answered()
