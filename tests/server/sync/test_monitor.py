"""Sync runs, events and connection status, on a clock the test moves."""

from __future__ import annotations

import pytest

from tradavity_mcp.server.sync.monitor import SyncEvent, SyncMonitor

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


CONN = {
    "connection_id": 7,
    "broker_key": "tradovate",
    "account_name": "Apex 50K",
    "is_active": True,
    "token_status": "valid",
}


async def test_a_triggered_sync_produces_its_run_and_events_in_order() -> None:
    clock = Clock()
    mon = SyncMonitor(clock)
    seen: list[SyncEvent] = []
    mon.subscribe(seen.append)
    run = mon.start_manual(7, "tradovate")
    mon.started(run)
    clock.now += 3
    mon.completed(run, {"log_id": 41, "imported": 2, "skipped": 1, "total_fetched": 3})
    assert [e.stage for e in seen] == ["queued", "started", "completed"]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert {e.run_id for e in seen} == {run}
    final = (await mon.runs())[0]
    assert (final.status, final.imported, final.skipped, final.fetched) == ("success", 2, 1, 3)
    # The same sync seen later in the platform's log is not a second run.
    assert mon.ingest_log([{"log_id": 41, "connection_id": 7, "trigger": "manual"}], {}) == 0
    assert len(await mon.runs()) == 1
    assert [e.stage for e in await mon.events()] == ["completed", "started", "queued"]


async def test_cooldown_counts_down_and_ends() -> None:
    clock = Clock()
    mon = SyncMonitor(clock)
    run = mon.start_manual(7, "tradovate")
    mon.completed(run, {"imported": 0})
    clock.now += 5
    status = await mon.status(CONN)
    assert status.state == "cooling_down"
    assert status.cooldown_seconds_left == 15.0
    clock.now += 15
    assert (await mon.status(CONN)).state == "idle"


async def test_scheduled_runs_from_the_log_and_failures() -> None:
    clock = Clock()
    mon = SyncMonitor(clock)
    rows = [
        {
            "log_id": 1,
            "connection_id": 7,
            "trigger": "schedule",
            "status": "success",
            "started_at": "2027-01-15T08:00:00Z",
            "finished_at": "2027-01-15T08:00:04Z",
            "imported": 3,
        },
        {
            "log_id": 2,
            "connection_id": 7,
            "trigger": "schedule",
            "status": "failed",
            "errors": ["broker API timeout"],
        },
    ]
    assert mon.ingest_log(rows, {7: "tradovate"}) == 2
    assert mon.ingest_log(rows, {7: "tradovate"}) == 0
    runs = await mon.runs()
    assert [r.run_id for r in runs] == ["log_2", "log_1"]
    assert runs[1].source == "schedule"
    status = await mon.status(CONN)
    assert status.state == "errored"
    assert status.reason == "broker API timeout"
    assert status.last_success_at == "2027-01-15T08:00:04Z"
    assert status.next_scheduled_sync_at == "2027-01-15T08:15:04Z"


async def test_token_expired_means_needs_reconnect_and_disabled_wins() -> None:
    mon = SyncMonitor(Clock())
    assert (await mon.status({**CONN, "token_status": "expired"})).state == "needs_reconnect"
    assert "Reconnect" in ((await mon.status({**CONN, "token_status": "expired"})).action or "")
    assert (await mon.status({**CONN, "is_active": False})).state == "disabled"


async def test_cancelled_and_events_expire_after_a_day() -> None:
    clock = Clock()
    mon = SyncMonitor(clock, max_events=3)
    run = mon.start_manual(7, None)
    mon.cancelled(run)
    assert (await mon.runs())[0].status == "cancelled"
    for _ in range(5):
        mon.start_manual(7, None)
    assert len(await mon.events(100)) == 3
    clock.now += 24 * 3600 + 1
    assert await mon.events(100) == []
    assert await mon.runs() == []
