"""The drills, short, in CI: exactly once under faults, crash and resume, API outage,
double dispatch, two processes on one ledger, and the ledger's footprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradavity_mcp.sandbox import DEMO_KEY

from . import drills

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("ids", [True, False], ids=["call-id", "no-id"])
async def test_exactly_once_under_faults(tmp_path: Path, ids: bool) -> None:
    result = await drills.exactly_once(12, tmp_path / "state", seed=5, ids=ids)
    faults = result["faults"]
    assert faults["drop_after_commit"] > 0
    assert faults["error_500"] + faults["deadlock_503"] > 0
    assert result["validation_errors_sent"] == 0


async def test_crash_and_resume(tmp_path: Path) -> None:
    """Two calls: the first killed mid-call (SIGKILL) and re-issued on a new process, the
    second on that process; each trade once (bigger: `python -m tests.drills.run crash`)."""
    log = tmp_path / "server.log"
    result = await drills.crash_and_resume(2, tmp_path / "state", log)
    assert result["kills"] >= 1
    # The canary: the key never reached the server's own (DEBUG) log.
    assert DEMO_KEY not in log.read_text("utf-8", errors="replace")
    assert DEMO_KEY[5:] not in log.read_text("utf-8", errors="replace")


async def test_crash_mid_call_at_now_reissued_without_an_id(tmp_path: Path) -> None:
    """trade_date "now", SIGKILL mid-call, the same call re-issued with no id: "now" was
    resolved once, so the re-issue finishes the first attempt; one trade each."""
    result = await drills.crash_and_resume(
        2, tmp_path / "state", tmp_path / "server.log", ids=False, now=True
    )
    assert result["kills"] >= 1


async def test_api_outage(tmp_path: Path) -> None:
    result = await drills.outage(3, tmp_path / "state")
    assert "finished automatically" in result["message"]
    assert "do not call again" in result["message"]


@pytest.mark.parametrize("ids", [True, False], ids=["two-host-ids", "no-id"])
async def test_double_dispatch_200_times(tmp_path: Path, ids: bool) -> None:
    result = await drills.double_dispatch(200, tmp_path / "state", ids=ids)
    assert (result["doubled"], result["lost"]) == (0, 0)
    assert result["outcomes"] == {"done": 200, "suspected_duplicate": 200}


async def test_two_processes_sharing_one_ledger_200_times(tmp_path: Path) -> None:
    result = await drills.two_processes(200, tmp_path / "state", tmp_path / "server.log")
    assert (result["doubled"], result["lost"]) == (0, 0)
    assert result["outcomes"] == {"done": 200, "suspected_duplicate": 200}


async def test_ledger_footprint_stays_small(tmp_path: Path) -> None:
    """Screenshots are kept only while their call is unfinished: after 20 journal_trade
    calls with 1 MB screenshots the ledger is far below 20 MB (full size, 1,000 calls:
    `python -m tests.drills.run footprint`)."""
    result = await drills.footprint(20, tmp_path / "state", writes=0)
    assert result["ledger_bytes"] < 5 * 2**20, result
