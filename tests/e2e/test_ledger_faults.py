"""When the ledger cannot record, nothing is sent, and the model reads why and the fix.

The state directory is a real, small tmpfs: remounted read-only, or filled to the last
byte, under a running server. A damaged ledger file stops the server at start with one
line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import DEMO_KEY, ManualClock, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.server.writes.ledger import Ledger
from tradavity_mcp.settings import Settings

from ..kit import (
    FAST_RETRY,
    NOW,
    SANDBOX_URL,
    SandboxTime,
    data_of,
    plain_trade,
    sandbox_writes,
    text_of,
)

pytestmark = pytest.mark.anyio

MOUNT = shutil.which("mount") or "/bin/mount"
UMOUNT = shutil.which("umount") or "/bin/umount"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB file system of our own, mounted for this test (the suite runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run([MOUNT, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run([UMOUNT, "-l", str(mount)], check=False)


def _server(state: Path, app: Any, clock: ManualClock) -> Any:
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=state
    )
    return build_server(settings, transport=SandboxTransport(app), clock=SandboxTime(clock))


def _serve_stdio(state: Path, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "TRADAVITY_SANDBOX": "1",
        "TRADAVITY_SANDBOX_DB": str(tmp_path / "sandbox.sqlite3"),
        "TRADAVITY_STATE_DIR": str(state),
    }
    return subprocess.run(
        [sys.executable, "-m", "tradavity_mcp"],
        env=env,
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _one_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_read_only_ledger_stops_the_server_with_one_line(
    small_disk: Path, tmp_path: Path
) -> None:
    state = small_disk / "state"
    Ledger(state / "ledger.sqlite3").close()
    subprocess.run([MOUNT, "-o", "remount,ro", str(small_disk)], check=True)
    try:
        line = _one_line(_serve_stdio(state, tmp_path))
    finally:
        subprocess.run([MOUNT, "-o", "remount,rw", str(small_disk)], check=True)
    assert str(state / "ledger.sqlite3") in line
    assert "read-only" in line
    assert "TRADAVITY_STATE_DIR" in line


async def test_a_full_disk_sends_nothing_and_says_why(small_disk: Path) -> None:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    async with Client(_server(small_disk / "state", app, clock)) as client:
        assert (
            data_of(await client.call_tool("create_trade", plain_trade(1.0)))["outcome"] == "done"
        )
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # the disk is full
        finally:
            os.close(fd)
        writes = sandbox_writes(app)
        # A long note makes the call's record larger than any page SQLite has free.
        refused = await client.call_tool(
            "create_trade", {**plain_trade(3.0), "general_notes": "x" * 60_000}
        )
        assert refused.is_error
        text = text_of(refused)
        assert "disk is full" in text
        assert str(small_disk / "state" / "ledger.sqlite3") in text
        assert sandbox_writes(app) == writes
        filler.unlink()
        done = await client.call_tool(
            "create_trade", {**plain_trade(3.0), "general_notes": "x" * 60_000}
        )
        assert data_of(done)["outcome"] == "done"


def test_a_damaged_ledger_stops_the_server_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ledger.sqlite3").write_bytes(b"not a database, not at all " * 100)
    line = _one_line(_serve_stdio(state, tmp_path))
    assert str(state / "ledger.sqlite3") in line
    assert "damaged" in line


async def test_nothing_unrecorded_is_sent_when_the_api_is_down_either(tmp_path: Path) -> None:
    """The converse: with the ledger fine and the API unreachable, the call is recorded
    and kept pending (never lost), and finished once the API is back."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    down = [False]

    class Flaky(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = SandboxTransport(app)

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if down[0]:
                raise httpx2.ConnectError("down", request=request)
            return await self.inner.handle_async_request(request)

    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=tmp_path
    )
    server = build_server(settings, transport=Flaky(), clock=SandboxTime(clock), retry=FAST_RETRY)
    async with Client(server) as client:
        await client.call_tool("lookup", {"name": "accounts"})
        down[0] = True
        pending = data_of(await client.call_tool("create_trade", plain_trade(9.5)))
        assert pending["outcome"] == "pending"
        down[0] = False
        again = data_of(await client.call_tool("create_trade", plain_trade(9.5)))
        assert again["outcome"] == "suspected_duplicate"
        assert again["trade_number"]
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        rows = [r async for r in api.iter_trades(symbol="MNQ", limit=200) if r.net_pnl == 9.5]
    assert len(rows) == 1
