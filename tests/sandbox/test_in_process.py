"""The sandbox in-process through SandboxTransport; state hooks; a journal that survives a
restart; the clocks."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx2
import pytest

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FaultSpec,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    ScaledClock,
    SystemClock,
    create_app,
)

from ..kit import TLS
from .conftest import START

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": f"Bearer {DEMO_KEY}"}
TRADE = {
    "account_id": 3,
    "trade_date": "2026-11-18T09:45:00Z",
    "symbol": "cl",
    "direction": "short",
    "net_pnl": "120.5",
}


def _client(app: object) -> httpx2.AsyncClient:
    assert hasattr(app, "state")
    return httpx2.AsyncClient(
        transport=SandboxTransport(app),  # type: ignore[arg-type]
        base_url="http://sandbox/api/v1",
        headers=HEADERS,
        verify=TLS,
    )


async def test_envelope_counters_and_request_log() -> None:
    app = create_app(SandboxConfig(clock=ManualClock(START)))
    state = app.state.sandbox
    async with _client(app) as http:
        me = await http.get("/me")
        assert me.json()["ok"] is True
        await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "log-1"})
        await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "log-1"})
        await http.post("/trades", json={**TRADE, "direction": "up"})
        await http.get("/me", headers={"Authorization": "Bearer nope"})
    assert [(r.method, r.path, r.status, r.error) for r in state.request_log] == [
        ("GET", "/api/v1/me", 200, None),
        ("POST", "/api/v1/trades", 201, None),
        ("POST", "/api/v1/trades", 201, None),
        ("POST", "/api/v1/trades", 400, "validation_error"),
        ("GET", "/api/v1/me", 401, "unauthorized"),
    ]
    assert [(r.idempotency_key, r.replayed) for r in state.request_log[1:3]] == [
        ("log-1", False),
        ("log-1", True),
    ]
    counts = state.counters
    assert (counts["requests"], counts["writes_committed"], counts["replays"]) == (5, 1, 1)
    assert counts["validation_error"] == 1
    state.reset_counters()
    assert (state.counters["requests"], state.request_log) == (0, [])


async def test_drop_after_commit_in_process_then_replay() -> None:
    app = create_app(SandboxConfig(clock=ManualClock(START), faults=FaultSpec(drop_after_commit=1)))
    state = app.state.sandbox
    async with _client(app) as http:
        cl: dict[str, str | int] = {"symbol": "CL", "limit": 200}
        before = len((await http.get("/trades", params=cl)).json()["data"]["trades"])  # reads pass
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "drop-1"})
        state.set_faults(None)
        rows = (await http.get("/trades", params=cl)).json()["data"]["trades"]
        assert len(rows) == before + 1
        retry = await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "drop-1"})
        assert (retry.status_code, retry.headers["x-idempotent-replay"]) == (201, "true")
        assert retry.json()["data"]["trade"]["trade_number"] == rows[0]["trade_number"]
    assert state.counters["drop_after_commit"] == 1


async def test_the_journal_and_its_replays_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "sandbox.sqlite3")
    clock = ManualClock(START)
    first = create_app(SandboxConfig(db=db, clock=clock))
    async with _client(first) as http:
        made = await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "keep"})
        count = (await http.get("/stats/summary", params={"range": "all"})).json()["data"]
    first.state.sandbox.store.close()
    clock.advance(3600)
    second = create_app(SandboxConfig(db=db, clock=clock, seed=7))  # not re-seeded
    async with _client(second) as http:
        again = await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "keep"})
        assert again.headers["x-idempotent-replay"] == "true"
        assert again.content == made.content
        after = (await http.get("/stats/summary", params={"range": "all"})).json()["data"]
        assert after["totals"] == count["totals"]
    clock.advance(24 * 3600)
    third = create_app(SandboxConfig(db=db, clock=clock))
    async with _client(third) as http:
        fresh = await http.post("/trades", json=TRADE, headers={"Idempotency-Key": "keep"})
        assert (fresh.status_code, fresh.headers.get("x-idempotent-replay")) == (201, None)


async def test_same_seed_same_data() -> None:
    bodies = []
    for _ in range(2):
        app = create_app(SandboxConfig(clock=ManualClock(START), seed=42))
        async with _client(app) as http:
            resp = await http.get("/trades", params={"limit": 200})
            bodies.append(resp.json()["data"])
    assert bodies[0] == bodies[1]
    other = create_app(SandboxConfig(clock=ManualClock(START), seed=43))
    async with _client(other) as http:
        assert (await http.get("/trades", params={"limit": 200})).json()["data"] != bodies[0]


async def test_seeded_journal_is_relative_to_the_clock() -> None:
    app = create_app(SandboxConfig(clock=ManualClock(START)))
    async with _client(app) as http:
        rows = (await http.get("/trades", params={"limit": 200})).json()["data"]["trades"]
        dates = sorted(r["trade_date"] for r in rows)
        assert dates[0][:10] >= "2026-08-19"
        assert dates[-1] <= "2026-11-18T11:06:40Z"
        me = (await http.get("/me")).json()
        assert re.fullmatch(r"req_[0-9a-f]{16}", me["meta"]["request_id"])


def test_clocks() -> None:
    manual = ManualClock(100.0)
    manual.advance(5)
    assert manual.now() == 105.0
    manual.set(7.0)
    assert manual.now() == 7.0
    assert abs(ManualClock().now() - time.time()) < 5
    assert abs(SystemClock().now() - time.time()) < 1
    fast = ScaledClock(1000.0)
    start = fast.now()
    time.sleep(0.01)
    assert fast.now() - start >= 10  # ten real milliseconds are ten sandbox seconds
