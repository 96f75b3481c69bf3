"""One rate window per API key across replicas, in a real Redis (`--redis`).

The window's rules on their own (two replicas' windows on one key, at once, a 429's hold,
Redis away), then three servers driving one free-tier key flat out against the sandbox:
no 429 reaches the model, at most 2 reach the API, where three servers each pacing alone
overrun the key.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
import redis.asyncio

from tradavity_mcp.api.idempotency import principal_for_key
from tradavity_mcp.server.shared_redis import open_redis
from tradavity_mcp.server.shared_window import RedisOutage, RedisWindow, redis_windows

pytestmark = pytest.mark.anyio

KEY = "tvty_" + "fee1" * 12
T0 = 1_800_000_000.0


@asynccontextmanager
async def _redis(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = open_redis(url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_two_replicas_windows_on_one_key_share_its_limit(redis_url: str) -> None:
    async with _redis(redis_url) as one, _redis(redis_url) as two:
        a = redis_windows(one, redis_url)(principal_for_key(KEY))
        b = redis_windows(two, redis_url)(principal_for_key(KEY))
        other_key = redis_windows(two, redis_url)(principal_for_key("tvty_" + "ab" * 24))
        granted = [await w.take(T0 + i, 6) for i, w in enumerate([a, b] * 4)]
        # Six slots between the two, then the next one frees when the first send ages out.
        assert granted == [None] * 6 + [T0 + 60, T0 + 60]
        assert await other_key.take(T0 + 8, 6) is None  # another key, another window
        assert await b.take(T0 + 59.5, 6) == T0 + 60
        assert await b.take(T0 + 60, 6) is None
        assert await a.take(T0 + 60.5, 6) == T0 + 61
        # What Redis holds is a fingerprint of the key, never the key.
        names = await one.keys("*")
        assert names
        assert all(KEY not in name and "fee1" * 4 not in name for name in names)


async def test_the_last_slot_goes_to_one_taker_only(redis_url: str) -> None:
    """50 takers at once on three connections, a limit of 10: exactly 10 slots."""
    async with _redis(redis_url) as one, _redis(redis_url) as two, _redis(redis_url) as three:
        windows = [redis_windows(r, redis_url)(principal_for_key(KEY)) for r in (one, two, three)]
        results: list[float | None] = []

        async def take(i: int) -> None:
            results.append(await windows[i % 3].take(T0 + i * 0.001, 10))

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(take, i)
    assert results.count(None) == 10


async def test_a_429_on_one_replica_holds_the_others(redis_url: str) -> None:
    async with _redis(redis_url) as one, _redis(redis_url) as two:
        a = redis_windows(one, redis_url)(principal_for_key(KEY))
        b = redis_windows(two, redis_url)(principal_for_key(KEY))
        await a.hold(T0 + 20)
        await b.hold(T0 + 5)  # an earlier hold does not shorten it
        assert await b.take(T0 + 1, 60) == T0 + 20
        assert await b.take(T0 + 20, 60) is None


async def test_redis_away_paces_on_the_replicas_own_window_and_says_so_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"redis://:hunter2@127.0.0.1:{closed.getsockname()[1]}/0"
    caplog.set_level(logging.WARNING, logger="tradavity_mcp.shared")
    async with _redis(redis_url) as live, _redis(dead_url) as dead:
        now = [0.0]
        outage = RedisOutage(dead_url, monotonic=lambda: now[0])
        window = RedisWindow(dead, principal_for_key(KEY), outage)
        # Paced all the same: 3 slots, then the wait for the first to age out.
        assert [await window.take(T0 + i, 3) for i in range(4)] == [None, None, None, T0 + 60]
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1
        assert "does not answer" in lines[0]
        assert "own window" in lines[0]
        assert "hunter2" not in lines[0]
        assert "***" in lines[0]
        # Its sends while Redis answered count too when it goes away.
        warm = RedisWindow(live, principal_for_key(KEY), RedisOutage(redis_url))
        assert await warm.take(T0, 2) is None
        assert await warm.take(T0 + 1, 2) is None
        warm._redis = dead  # the same window, its Redis gone
        assert await warm.take(T0 + 2, 2) == T0 + 60
