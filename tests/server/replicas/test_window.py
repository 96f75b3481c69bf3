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
from pathlib import Path

import anyio
import pytest
import redis.asyncio
from mcp import Client

from tradavity_mcp.api.client import RetryPolicy
from tradavity_mcp.api.idempotency import principal_for_key
from tradavity_mcp.sandbox import (
    FREE_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
)
from tradavity_mcp.server import build_server
from tradavity_mcp.server.replicas.redis_client import open_redis
from tradavity_mcp.server.replicas.window import RedisOutage, RedisWindow, redis_windows
from tradavity_mcp.settings import Settings

from ...kit import SANDBOX_URL

pytestmark = pytest.mark.anyio

KEY = FREE_KEY
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
        granted = [await w.take(T0 + i, 6, f"s{i}") for i, w in enumerate([a, b] * 4)]
        # Six slots between the two, then the next one frees when the first send ages out.
        assert granted == [None] * 6 + [T0 + 60, T0 + 60]
        assert await other_key.take(T0 + 8, 6, "o") is None  # another key, another window
        assert await b.take(T0 + 59.5, 6, "x") == T0 + 60
        assert await b.take(T0 + 60, 6, "s6") is None
        assert await a.take(T0 + 60.5, 6, "s7") == T0 + 61
        # A send answered late holds its slot until a window after its answer.
        await a.settle("s2", T0 + 30)
        later = [await b.take(T0 + t, 6, f"s{t}") for t in (62, 63, 64, 65, 66)]
        assert later == [None, None, None, None, T0 + 90]
        # What Redis holds is a fingerprint of the key, never the key.
        names = await one.keys("*")
        assert names
        assert all(KEY not in name and "fee1" * 4 not in name for name in names)


async def test_a_replica_new_to_a_key_paces_by_the_limit_another_replica_learned(
    redis_url: str,
) -> None:
    async with _redis(redis_url) as one, _redis(redis_url) as two:
        a = redis_windows(one, redis_url)(principal_for_key(KEY))
        b = redis_windows(two, redis_url)(principal_for_key(KEY))
        # Replica A was told the key's limit (a Pro key: 600/min) and sent 100 requests.
        assert [await a.take(T0 + i * 0.1, 600, f"a{i}") for i in range(100)] == [None] * 100
        # Replica B has had no answer yet (no limit of its own): it goes by A's, not the
        # free tier's 60, which the window is already far past.
        assert await b.take(T0 + 11, None, "b0") is None
        # With no limit known anywhere, the smallest tier's holds.
        fresh = redis_windows(two, redis_url)(principal_for_key("tvty_" + "cd" * 24))
        taken = [await fresh.take(T0 + i * 0.1, None, f"f{i}") for i in range(61)]
        assert taken[:60] == [None] * 60
        assert taken[60] == T0 + 60


async def test_the_last_slot_goes_to_one_taker_only(redis_url: str) -> None:
    """50 takers at once on three connections, a limit of 10: exactly 10 slots."""
    async with _redis(redis_url) as one, _redis(redis_url) as two, _redis(redis_url) as three:
        windows = [redis_windows(r, redis_url)(principal_for_key(KEY)) for r in (one, two, three)]
        results: list[float | None] = []

        async def take(i: int) -> None:
            results.append(await windows[i % 3].take(T0 + i * 0.001, 10, f"s{i}"))

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
        assert await b.take(T0 + 1, 60, "s1") == T0 + 20
        assert await b.take(T0 + 20, 60, "s2") is None


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
        taken = [await window.take(T0 + i, 3, f"s{i}") for i in range(4)]
        assert taken == [None, None, None, T0 + 60]
        await window.settle("s0", T0 + 10)  # dated on its own window
        assert await window.take(T0 + 60, 3, "s4") == T0 + 61
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1
        assert "does not answer" in lines[0]
        assert "own window" in lines[0]
        assert "hunter2" not in lines[0]
        assert "***" in lines[0]
        # Its sends while Redis answered count too when it goes away.
        warm = RedisWindow(live, principal_for_key(KEY), RedisOutage(redis_url))
        assert await warm.take(T0, 2, "w0") is None
        assert await warm.take(T0 + 1, 2, "w1") is None
        warm._redis = dead  # the same window, its Redis gone
        assert await warm.take(T0 + 2, 2, "w2") == T0 + 60


class _Waited:
    """The servers' clock and the sandbox's, on time that passes only when a server
    waits: a server sleeping until t moves the clock to t (no further back), so the
    window fills and frees by what was sent and waited for, never by how fast the
    machine runs the requests (a loaded machine sends no fewer per window)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        self.clock.set(max(self.clock.now(), self.clock.now() + seconds))
        await anyio.lowlevel.checkpoint()

    def jitter(self) -> float:
        return 0.5


#: Calls each of the three servers makes, back to back, on two connections.
CALLS_PER_SERVER = 50


async def _three_servers_flat_out(
    tmp_path: Path, redis_url: str | None, calls: int = CALLS_PER_SERVER
) -> dict[str, int]:
    """Three servers (replicas: own state directories, one key) call find_trades flat
    out, each on two connections at once; what the sandbox saw and the model got."""
    clock = ManualClock(T0)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    environ = {"TRADAVITY_API_KEY": FREE_KEY}
    if redis_url is not None:
        environ["TRADAVITY_REDIS_URL"] = redis_url
    servers = [
        build_server(
            Settings.load(environ=environ, base_url=SANDBOX_URL, state_dir=tmp_path / f"r{i}"),
            transport=SandboxTransport(app),
            clock=_Waited(clock),
            retry=RetryPolicy(max_retry_after=120),
        )
        for i in range(3)
    ]
    log = app.state.sandbox.request_log
    errors = 0

    async def drive(client: Client) -> None:
        nonlocal errors
        for _ in range(calls // 2):
            result = await client.call_tool("find_trades", {"limit": 5})
            errors += int(result.is_error)

    start = clock.now()
    async with (
        Client(servers[0]) as a,
        Client(servers[1]) as b,
        Client(servers[2]) as c,
        anyio.create_task_group() as tg,
    ):
        for client in (a, b, c, a, b, c):
            tg.start_soon(drive, client)
    return {
        "sandbox_seconds": round(clock.now() - start),
        "requests": len(log),
        "429": sum(1 for r in log if r.status == 429),
        "errors_to_model": errors,
    }


async def test_three_servers_on_one_free_key_stay_under_its_limit(
    tmp_path: Path, redis_url: str
) -> None:
    seen = await _three_servers_flat_out(tmp_path, redis_url)
    print("shared window:", seen)
    assert seen["requests"] > 120  # more than two minutes' worth of the key's limit
    assert seen["errors_to_model"] == 0
    assert seen["429"] <= 2


async def test_three_servers_each_pacing_alone_overrun_the_key(tmp_path: Path) -> None:
    """The control: without Redis each server counts only its own sends."""
    seen = await _three_servers_flat_out(tmp_path, None)
    print("each alone:", seen)
    assert seen["429"] > 2
