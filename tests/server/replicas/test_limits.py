"""The OAuth server's rate limits in a real Redis (`--redis`): one for every replica, per
client address and in all; an admission outside the total (an address whose client is
in use) held to its address's limit only; a limit with no total; no address in clear."""

from __future__ import annotations

import pytest

from tradavity_mcp.server.oauth.clients import RateLimit
from tradavity_mcp.server.replicas.limits import redis_limits
from tradavity_mcp.server.replicas.redis_client import open_redis

pytestmark = pytest.mark.anyio


async def test_one_limit_for_every_replica_with_admissions_outside_the_total(
    redis_url: str,
) -> None:
    redis = open_redis(redis_url)
    try:
        # Two replicas' views of one limit.
        one = redis_limits(redis, redis_url)("register", RateLimit(per_address=2, total=3))
        two = redis_limits(redis, redis_url)("register", RateLimit(per_address=2, total=3))
        net = "2001:db8:1:2::/64"
        assert await one.admit(net)
        assert await two.admit(net)
        assert not await one.admit(net), "the address's two, across replicas"
        assert await two.admit("192.0.2.7")
        assert not await one.admit("192.0.2.8"), "the total's three"
        assert await one.admit("192.0.2.8", overall=False), "outside the total"
        assert await two.admit("192.0.2.8", overall=False)
        assert not await one.admit("192.0.2.8", overall=False), "still its address's two"
        assert not await two.admit("192.0.2.9"), "those did not free or take places"
        # A limit with no total: per address only.
        endless = redis_limits(redis, redis_url)(
            "authorize", RateLimit(per_address=1, total=None, window=60.0)
        )
        assert [await endless.admit(f"198.51.100.{n}") for n in range(50)] == [True] * 50
        assert not await endless.admit("198.51.100.0")
        keys = " ".join(str(k) for k in await redis.keys("*"))
        assert "limit:register:" in keys
        for address in (net, "192.0.2.7", "198.51.100.0"):
            assert address not in keys
    finally:
        await redis.aclose()
