"""The per-key, per-user and per-day sliding windows, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FREE_KEY,
    ManualClock,
    SandboxConfig,
    SandboxState,
    SandboxTransport,
    create_app,
)

from ..kit import TLS
from .conftest import START, Live

pytestmark = pytest.mark.anyio


async def test_per_user_window_spans_keys(live: Live) -> None:
    keys = [FREE_KEY, *(live.state.issue_key(FREE_KEY) for _ in range(3))]
    for i, k in enumerate(keys[:3]):
        for j in range(60):
            resp = await live.call("GET", "/me", key=k)
            assert resp.status_code == 200, (i, j)
            if i == 1 and j == 0:
                rate = resp.json()["meta"]["rate_limit"]
                # This key's window is fresh, the user's already holds 60 requests.
                assert (rate["remaining"], rate["user_remaining"]) == (59, 119)
        live.clock.advance(5)
    assert (await live.call("GET", "/me", key=keys[0])).headers["x-ratelimit-scope"] == "user"
    blocked = await live.call("GET", "/me", key=keys[3])  # a fresh key, but the user is full
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert blocked.headers["x-ratelimit-scope"] == "user"
    assert blocked.headers["retry-after"] == "45"  # the first batch ages out at START + 60
    live.clock.advance(45)
    assert (await live.call("GET", "/me", key=keys[3])).status_code == 200


async def test_replays_and_errors_tick_the_counter(live: Live) -> None:
    def remaining(resp: httpx2.Response) -> int:
        return int(resp.headers["x-ratelimit-remaining"])

    first = await live.call("GET", "/me")
    body = {"name": "Counted"}
    made = await live.call("POST", "/tag-categories", json=body, headers={"Idempotency-Key": "c"})
    replay = await live.call("POST", "/tag-categories", json=body, headers={"Idempotency-Key": "c"})
    assert replay.headers["x-idempotent-replay"] == "true"
    missing = await live.call("GET", "/trades/999999")
    assert missing.status_code == 404
    assert int(missing.headers["x-ratelimit-remaining"]) == remaining(first) - 3
    assert [remaining(r) for r in (made, replay)] == [remaining(first) - 1, remaining(first) - 2]
    # The replayed body is the cached one, byte for byte; only the headers are fresh.
    assert replay.content == made.content
    live.clock.advance(7)
    later = await live.call("GET", "/me")
    # The reset is when the newest entry of the rolling window ages out.
    assert int(later.headers["x-ratelimit-reset"]) == int(START + 7 + 60)
    assert later.json()["meta"]["rate_limit"]["reset_at"] == "2026-11-18T11:07:47Z"


@pytest.fixture
async def in_process() -> AsyncIterator[tuple[httpx2.AsyncClient, ManualClock, SandboxState]]:
    clock = ManualClock(START)
    app = create_app(SandboxConfig(clock=clock))
    async with httpx2.AsyncClient(
        transport=SandboxTransport(app), base_url="http://sandbox/api/v1", verify=TLS
    ) as http:
        yield http, clock, app.state.sandbox


async def test_daily_window_in_process(
    in_process: tuple[httpx2.AsyncClient, ManualClock, SandboxState],
) -> None:
    http, clock, _ = in_process
    headers = {"X-API-Key": FREE_KEY}
    for i in range(5000):
        resp = await http.get("/scopes", headers=headers)
        assert resp.status_code == 200, i
        clock.advance(1)  # one a second never fills the 60-a-minute window
    blocked = await http.get("/scopes", headers=headers)
    assert blocked.status_code == 429
    assert blocked.headers["x-ratelimit-scope"] == "key-daily"
    assert blocked.headers["retry-after"] == str(86400 - 5000)
    clock.advance(86400 - 5000)
    assert (await http.get("/scopes", headers=headers)).status_code == 200


async def test_pro_key_window_in_process(
    in_process: tuple[httpx2.AsyncClient, ManualClock, SandboxState],
) -> None:
    http, clock, _ = in_process
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    for _ in range(300):
        assert (await http.get("/me", headers=headers)).status_code == 200
    blocked = await http.get("/me", headers=headers)
    assert (blocked.status_code, blocked.headers["x-ratelimit-scope"]) == (429, "key")
    assert blocked.headers["retry-after"] == "60"
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    clock.advance(59.5)
    still = await http.get("/me", headers=headers)
    assert (still.status_code, still.headers["retry-after"]) == (429, "1")
    clock.advance(0.5)
    assert (await http.get("/me", headers=headers)).status_code == 200
