"""The drills, short, in CI: exactly once under faults, crash and resume, API outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradavity_mcp.sandbox import DEMO_KEY

from . import drills

pytestmark = pytest.mark.anyio


async def test_exactly_once_under_faults(tmp_path: Path) -> None:
    result = await drills.exactly_once(12, tmp_path / "state", seed=5)
    faults = result["faults"]
    assert faults["drop_after_commit"] > 0
    assert faults["error_500"] + faults["deadlock_503"] > 0
    assert result["validation_errors_sent"] == 0


async def test_crash_and_resume(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    result = await drills.crash_and_resume(5, tmp_path / "state", log)
    assert result["kills"] >= 1
    # The canary: the key never reached the server's own (DEBUG) log.
    assert DEMO_KEY not in log.read_text("utf-8", errors="replace")
    assert DEMO_KEY[5:] not in log.read_text("utf-8", errors="replace")


async def test_api_outage(tmp_path: Path) -> None:
    result = await drills.outage(3, tmp_path / "state")
    assert "finished automatically" in result["message"]
