"""The OAuth server's rate limits shared by replicas through a real Redis (`--redis`): an
admission withdrawn on one replica (a key the consent page found right) frees its place
for every replica, and a limit kept per consent request has no total."""

from __future__ import annotations

import pytest

from tradavity_mcp.server.oauth.clients import RateLimit
from tradavity_mcp.server.replicas.limits import redis_limits
from tradavity_mcp.server.replicas.redis_client import open_redis

pytestmark = pytest.mark.anyio

HERE, THERE = "203.0.113.7", "198.51.100.9"


async def test_a_withdrawn_admission_frees_its_place_on_every_replica(redis_url: str) -> None:
    one, two = open_redis(redis_url), open_redis(redis_url)
    try:
        a = redis_limits(one, redis_url)("consent", RateLimit(per_address=2, total=3, window=60))
        b = redis_limits(two, redis_url)("consent", RateLimit(per_address=2, total=3, window=60))
        assert await a.admit(HERE, "t1")
        assert await b.admit(HERE, "t2")
        assert not await a.admit(HERE, "t3"), "two per address, across both replicas"
        await b.withdraw(HERE, "t1")  # t1's key was right: it counts no more
        assert await a.admit(HERE, "t4")
        assert await b.admit(THERE, "t5")
        assert not await a.admit(THERE, "t6"), "three in all: t2, t4, t5"
        await a.withdraw(THERE, "t5")
        assert await b.admit(THERE, "t7")
        await a.withdraw(HERE, "never-admitted")  # unknown tickets are nothing
        assert not await b.admit(HERE, "t8")
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_limit_without_a_total_keeps_none(redis_url: str) -> None:
    client = open_redis(redis_url)
    try:
        per_request = redis_limits(client, redis_url)(
            "consent-request", RateLimit(per_address=1, total=None, window=60)
        )
        for n in range(20):
            assert await per_request.admit(f"request:{n}", f"t{n}")
        assert not await per_request.admit("request:0", "again")
        assert await client.exists("tradavity-mcp:limit:consent-request:all") == 0
    finally:
        await client.aclose()
