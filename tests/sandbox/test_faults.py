"""Each injected fault does what it says, deterministically under a seed."""

from __future__ import annotations

import time

import httpx2
import pytest

from tradavity_mcp.sandbox import FaultSpec

from ..kit import TLS
from .conftest import Live

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-11-17T14:31:00Z",
    "symbol": "YM",
    "direction": "long",
    "net_pnl": 10,
}


async def _count_ym(live: Live) -> int:
    rows = (await live.call("GET", "/trades", params={"symbol": "YM", "limit": 200})).json()[
        "data"
    ]["trades"]
    return len(rows)


async def test_drop_after_commit(live: Live) -> None:
    before = await _count_ym(live)
    live.state.set_faults(FaultSpec(drop_after_commit=1.0))
    with pytest.raises(httpx2.RemoteProtocolError):
        await live.call("POST", "/trades", json=TRADE, headers={"Idempotency-Key": "d1"})
    live.state.set_faults(None)
    assert await _count_ym(live) == before + 1  # the write committed
    retry = await live.call("POST", "/trades", json=TRADE, headers={"Idempotency-Key": "d1"})
    assert retry.status_code == 201
    assert retry.headers["x-idempotent-replay"] == "true"
    assert await _count_ym(live) == before + 1
    assert live.state.counters["drop_after_commit"] == 1


@pytest.mark.parametrize(
    ("spec", "status", "code", "retry_after"),
    [
        (FaultSpec(error_500=1.0), 500, "internal_error", None),
        (FaultSpec(deadlock_503=1.0), 503, "deadlock_retry", "1"),
        (FaultSpec(rate_limit_429=1.0), 429, "rate_limited", "1"),
    ],
)
async def test_failures_happen_before_any_side_effect(
    live: Live, spec: FaultSpec, status: int, code: str, retry_after: str | None
) -> None:
    before = await _count_ym(live)
    live.state.set_faults(spec)
    resp = await live.call("POST", "/trades", json=TRADE, headers={"Idempotency-Key": "f1"})
    live.state.set_faults(None)
    assert (resp.status_code, resp.json()["error"]["code"]) == (status, code)
    assert resp.headers.get("retry-after") == retry_after
    assert await _count_ym(live) == before
    # Not cached: the retry runs for real.
    ok = await live.call("POST", "/trades", json=TRADE, headers={"Idempotency-Key": "f1"})
    assert ok.status_code == 201
    assert "x-idempotent-replay" not in ok.headers


async def test_latency(live: Live) -> None:
    live.state.set_faults(FaultSpec(latency_ms=150))
    started = time.perf_counter()
    await live.call("GET", "/me")
    live.state.set_faults(None)
    assert time.perf_counter() - started >= 0.15


def test_spec_parsing_and_determinism() -> None:
    spec = FaultSpec.parse("drop_after_commit=0.2, error_500=0.1,latency_ms=50")
    assert (spec.drop_after_commit, spec.error_500, spec.latency_ms) == (0.2, 0.1, 50)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultSpec.parse("meteor=0.1")
    with pytest.raises(ValueError, match="from 0 to 1"):
        FaultSpec.parse("error_500=2")
    from tradavity_mcp.sandbox._faults import Faults

    draws = [[Faults(spec, seed=7).draw("drop_after_commit") for _ in range(1)] for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    a, b = Faults(spec, seed=7), Faults(spec, seed=7)
    assert [a.draw("error_500") for _ in range(50)] == [b.draw("error_500") for _ in range(50)]


async def test_faults_spare_unauthenticated_requests_and_drops_spare_reads(live: Live) -> None:
    live.state.set_faults(FaultSpec(error_500=1.0))
    anonymous = await live.http.get(live.base + "/me")
    assert anonymous.status_code == 401
    assert (await live.call("GET", "/me")).status_code == 500
    live.state.set_faults(FaultSpec(drop_after_commit=1.0))
    assert (await live.call("GET", "/trades")).status_code == 200
    live.state.set_faults(None)
    assert live.state.counters["error_500"] == 1
    assert live.state.counters["drop_after_commit"] == 0


def test_fault_sequences_repeat_under_a_seed() -> None:
    import asyncio

    from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, create_app, serve_in_thread

    spec = FaultSpec.parse("error_500=0.2,deadlock_503=0.2,rate_limit_429=0.2")

    async def statuses(base: str) -> list[int]:
        async with httpx2.AsyncClient(verify=TLS) as http:
            headers = {"Authorization": f"Bearer {DEMO_KEY}"}
            return [(await http.get(base + "/me", headers=headers)).status_code for _ in range(40)]

    runs = []
    for seed in (11, 11, 12):
        app = create_app(SandboxConfig(faults=spec, fault_seed=seed))
        with serve_in_thread(app) as base:
            runs.append(asyncio.run(statuses(base)))
    assert runs[0] == runs[1] != runs[2]
    assert {200, 500, 503, 429} <= set(runs[0])
