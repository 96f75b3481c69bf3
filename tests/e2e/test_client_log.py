"""MCP logging on the 2025 eras: `logging/setLevel`, then the server's lines at and
above that level as `notifications/message`, never a key."""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import LoggingMessageNotificationParams

from .conftest import Env

pytestmark = pytest.mark.anyio

#: Shaped like a Tradavity key (the conftest checks DEMO_KEY never reaches a log at all).
KEY_SHAPED = "tvty_" + "ab" * 24


async def test_set_level_sends_lines_at_and_above_it_without_keys(env: Env) -> None:
    got: list[LoggingMessageNotificationParams] = []
    both = anyio.Event()

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        got.append(params)
        if len(got) >= 2:
            both.set()

    source = logging.getLogger("tradavity_mcp.journal")
    async with Client(env.server(), mode="legacy", logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        with warnings.catch_warnings():  # deprecated at 2026-07-28; the 2025 eras use it
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            answer = await client.set_logging_level("warning")
        assert answer.model_dump(exclude_none=True) == {}
        source.info("below the level: not sent")
        source.warning("a write is waiting for Tradavity (key %s)", KEY_SHAPED)
        thread = threading.Thread(target=source.error, args=("from a worker thread",))
        thread.start()
        thread.join()
        with anyio.fail_after(10):
            await both.wait()
        await client.list_tools()  # anything else queued would have arrived by now
        await anyio.sleep(0.1)
    seen = [(p.level, p.logger, p.data) for p in got]
    assert seen == [
        (
            "warning",
            "tradavity_mcp.journal",
            "a write is waiting for Tradavity (key tvty_[hidden])",
        ),
        ("error", "tradavity_mcp.journal", "from a worker thread"),
    ]
    assert all(KEY_SHAPED not in str(p.data) for p in got)


async def test_without_set_level_nothing_is_sent(env: Env) -> None:
    got: list[Any] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    async with Client(env.server(), mode="legacy", logging_callback=on_log) as client:
        logging.getLogger("tradavity_mcp.journal").error("nobody asked for this")
        await client.list_tools()
        await anyio.sleep(0.2)
    assert got == []
