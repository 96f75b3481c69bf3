"""Pacing: the client waits for a slot instead of firing requests that would get 429."""

from __future__ import annotations

import math

import anyio
import httpx2
import pytest

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.api.clock import FakeClock
from tradavity_mcp.api.pacing import LocalWindow

from ._scripted import BASE, KEY, make_client

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


def _client_on(
    server: SlidingWindowServer, clock: FakeClock, window: LocalWindow | None
) -> TradavityClient:
    return TradavityClient(
        KEY, base_url=BASE, transport=httpx2.MockTransport(server), clock=clock, window=window
    )


async def _three_clients_burst(shared: bool) -> SlidingWindowServer:
    """Three clients of one key (as three replicas), each told the tier by one request,
    then 4 requests each at once; `shared`: all three take slots from one window."""
    clock = FakeClock()
    server = SlidingWindowServer(clock, limit=5)
    one = LocalWindow()
    clients = [_client_on(server, clock, one if shared else None) for _ in range(3)]
    try:
        for api in clients:
            await api.me()
        async with anyio.create_task_group() as tg:
            for api in clients:
                for _ in range(4):
                    tg.start_soon(api.me)
    finally:
        for api in clients:
            await api.aclose()
    return server


async def test_clients_sharing_one_window_stay_under_the_key_limit_together() -> None:
    server = await _three_clients_burst(shared=True)
    assert server.count_ok == 15
    assert server.count_429 == 0


async def test_clients_each_on_its_own_window_overrun_the_key_limit() -> None:
    """The control: each pacer alone counts only its own sends."""
    server = await _three_clients_burst(shared=False)
    assert server.count_ok == 15
    assert server.count_429 > 0


async def test_a_429_holds_the_windows_other_users() -> None:
    clock = FakeClock()
    window = LocalWindow()
    answers = [
        httpx2.Response(
            429,
            json={"ok": False, "error": {"code": "rate_limited", "message": "slow down"}},
            headers={"Retry-After": "20", "X-RateLimit-Scope": "key"},
        ),
        httpx2.Response(200, json={"ok": True, "data": {}, "meta": {}}),
    ]
    sent_at: list[float] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        sent_at.append(clock.now())
        return answers.pop(0) if len(answers) > 1 else answers[0]

    first = TradavityClient(
        KEY, base_url=BASE, transport=httpx2.MockTransport(server), clock=clock, window=window
    )
    other = TradavityClient(
        KEY, base_url=BASE, transport=httpx2.MockTransport(server), clock=clock, window=window
    )
    start = clock.now()
    async with first, other:
        await first.me()  # 429, then held 20 s, then 200
        assert [t - start for t in sent_at] == [0, 20]
        assert (
            await window.take(start + 19, 60, "probe") == start + 20
        )  # the hold, as others see it
        await other.me()
    assert sent_at[-1] >= start + 20
