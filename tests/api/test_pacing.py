"""Pacing: the client waits for a slot instead of firing requests that would get 429."""

from __future__ import annotations

import math

import anyio
import httpx2
import pytest

from tradavity_mcp.api.clock import FakeClock

from ._scripted import make_client

pytestmark = pytest.mark.anyio


class SlidingWindowServer:
    """A tiny honest model of the API's 60 s sliding window, on the fake clock."""

    def __init__(self, clock: FakeClock, limit: int, used_by_others: list[float] | None = None):
        self.clock = clock
        self.limit = limit
        self.hits: list[float] = list(used_by_others or [])
        self.count_429 = 0
        self.count_ok = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        now = self.clock.now()
        self.hits = [t for t in self.hits if t > now - 60]
        if len(self.hits) >= self.limit:
            self.count_429 += 1
            retry = math.ceil(self.hits[0] + 60 - now)
            return httpx2.Response(
                429,
                json={"ok": False, "error": {"code": "rate_limited", "message": "slow down"}},
                headers={"Retry-After": str(retry), "X-RateLimit-Scope": "key"},
            )
        self.hits.append(now)
        self.count_ok += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - len(self.hits)),
            "X-RateLimit-Reset": str(int(self.hits[-1] + 60)),
        }
        return httpx2.Response(200, json={"ok": True, "data": {}, "meta": {}}, headers=headers)


async def test_a_burst_is_paced_and_never_hits_429() -> None:
    clock = FakeClock()
    server = SlidingWindowServer(clock, limit=5)
    async with make_client(server, clock=clock) as api:
        await api.me()  # learn the tier from the headers
        async with anyio.create_task_group() as tg:
            for _ in range(11):
                tg.start_soon(api.me)
    assert server.count_429 == 0
    assert server.count_ok == 12
    # 12 requests at 5 per rolling minute need at least two full windows.
    assert sum(clock.sleeps) >= 120


async def test_before_the_first_answer_the_smallest_tier_is_assumed() -> None:
    clock = FakeClock()
    server = SlidingWindowServer(clock, limit=60)
    async with make_client(server, clock=clock) as api, anyio.create_task_group() as tg:
        for _ in range(70):
            tg.start_soon(api.me)
    assert server.count_429 == 0
    assert server.count_ok == 70


async def test_slots_used_by_other_clients_are_respected() -> None:
    clock = FakeClock()
    # Another process on the same key used 4 of 5 slots over the last 30 s.
    others = [clock.now() - 30 + i for i in range(4)]
    server = SlidingWindowServer(clock, limit=5, used_by_others=others)
    async with make_client(server, clock=clock) as api:
        for _ in range(3):
            await api.me()
    # Only the first request could go at once; the pacer waited for the others' slots to
    # free (it cannot know their times, so it may need one 429 to learn the exact time).
    assert server.count_ok == 3
    assert server.count_429 <= 1
    assert sum(clock.sleeps) >= 30


async def test_rate_limit_state_is_exposed() -> None:
    clock = FakeClock()
    server = SlidingWindowServer(clock, limit=300)
    async with make_client(server, clock=clock) as api:
        await api.me()
        await api.me()
        assert api.rate_limit.limit == 300
        assert api.rate_limit.remaining == 298
