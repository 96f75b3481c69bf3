"""Attacks an adversarial review made on the running server, each refused through a real
client: a FIFO as a screenshot, foreign Host headers on every HTTP route, another user's
sync notifications, a flood of junk bearer keys, and loose tool arguments."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tradavity_mcp.server import _files
from tradavity_mcp.server._calls import UserError

from .conftest import Env, data_of, png_bytes, text_of

pytestmark = pytest.mark.anyio


async def _account(client: Client) -> str:
    rows = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"]
    return str(rows[0]["name"])


def _trade(account: str) -> dict[str, Any]:
    return {
        "symbol": "MNQ",
        "direction": "long",
        "net_pnl": 12.5,
        "trade_date": "2026-11-20T09:31",
        "account": account,
    }


def _unblock_fifo_later(fifo: Path, after: float, stop: threading.Event) -> threading.Thread:
    """If a regression ever opens the FIFO blockingly, a writer shows up after `after`
    seconds so the test fails on its timing instead of hanging the run."""

    def writer() -> None:
        if stop.wait(after):
            return
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # no reader yet
                if exc.errno != errno.ENXIO:
                    return
                time.sleep(0.05)
                continue
            os.close(fd)
            return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


async def test_a_fifo_is_refused_at_once_while_other_calls_run(env: Env) -> None:
    fifo = env.charts / "chart.png"
    os.mkfifo(fifo)
    stop = threading.Event()
    guard = _unblock_fifo_later(fifo, 3.0, stop)
    try:
        async with Client(env.server()) as client:
            account = await _account(client)
            number = data_of(await client.call_tool("create_trade", _trade(account)))[
                "trade_number"
            ]
            outcome: dict[str, Any] = {}

            async def attach() -> None:
                started = time.monotonic()
                result = await client.call_tool(
                    "attach_screenshot", {"trade_number": number, "path": str(fifo)}
                )
                outcome["attach"] = (time.monotonic() - started, result)

            async def read() -> None:
                for _ in range(3):
                    page = data_of(await client.call_tool("find_trades", {"limit": 2}))
                    assert page["count"] == 2
                outcome["reads"] = True

            async with anyio.create_task_group() as tg:
                tg.start_soon(attach)
                tg.start_soon(read)
            elapsed, result = outcome["attach"]
            assert result.is_error
            assert "named pipe" in text_of(result)
            assert elapsed < 1.0
            assert outcome["reads"]
            # The server is still fully alive: a real chart in the same folder attaches.
            chart = env.charts / "real.png"
            chart.write_bytes(png_bytes())
            shot = data_of(
                await client.call_tool(
                    "attach_screenshot", {"trade_number": number, "path": str(chart)}
                )
            )
            assert shot["screenshot_id"]
    finally:
        stop.set()
        guard.join(timeout=5)


async def test_a_read_that_hangs_is_given_up_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chart = tmp_path / "slow.png"
    chart.write_bytes(png_bytes())
    release = threading.Event()
    real = _files.read_confined

    def slow(path: str, allowed: Any, *, max_bytes: int) -> bytes:
        release.wait(5)  # a stuck network mount
        return real(path, allowed, max_bytes=max_bytes)

    monkeypatch.setattr(_files, "read_confined", slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            with pytest.raises(UserError, match=r"longer than 0\.3 s"):
                await _files.read_confined_async(
                    str(chart), [tmp_path], max_bytes=1 << 20, limit_seconds=0.3
                )
            tg.cancel_scope.cancel()
    finally:
        release.set()
    assert time.monotonic() - started < 1.0
    assert ticks >= 10  # the loop kept running while the read was stuck
