"""Secrets: the key as a canary, looked for in everything a run produces. Hosted load."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tradavity_mcp.api.clock import FakeClock
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FREE_KEY,
    SECOND_PRO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.sandbox._seed import hash_key
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.settings import Settings

from ..kit import http_transport, text_of
from ._kit import Plan

pytestmark = pytest.mark.anyio

CANARY_PARTS = (DEMO_KEY, DEMO_KEY[5:], DEMO_KEY[5:29], DEMO_KEY[29:])


def _clean(haystack: str, where: str) -> None:
    for part in CANARY_PARTS:
        assert part not in haystack, f"the API key leaked into {where}"


async def test_the_key_appears_nowhere(tmp_path: Path) -> None:
    """stdout (every protocol message), stderr at DEBUG, tool results, resources, errors."""
    app = create_app(SandboxConfig(db=":memory:"))
    stderr = tmp_path / "stderr.log"
    seen: list[str] = []

    async def record(message: Any) -> None:
        seen.append(repr(message))

    with serve_in_thread(app) as base, stderr.open("w") as errlog:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tradavity_mcp", "--log-level", "DEBUG"],
            env={
                "TRADAVITY_API_KEY": DEMO_KEY,
                "TRADAVITY_BASE_URL": base,
                "TRADAVITY_STATE_DIR": str(tmp_path / "state"),
            },
        )
        async with Client(stdio_client(params, errlog=errlog), message_handler=record) as client:
            plan = await Plan.discover(client)
            outputs = [
                await client.call_tool("journal_trade", plan.arguments(0)),
                await client.call_tool(
                    "create_trade",
                    {
                        "symbol": "ES",
                        "direction": "long",
                        "net_pnl": 1,
                        "trade_date": "now",
                        "account": "nope",
                    },
                ),
                await client.call_tool("trigger_sync", {"connection": 2}),  # token expired
                await client.call_tool("get_trade", {"trade_number": 999999}),
                await client.call_tool("lookup", {"name": "me"}),
                await client.call_tool("get_stats", {"range": "forever"}),
            ]
            resources = [
                await client.read_resource(uri)
                for uri in (
                    "tradavity://catalog/me",
                    "tradavity://sync/status",
                    "tradavity://accounts",
                    "tradavity://trades/1",
                )
            ]
            tools = await client.list_tools()
    assert any(r.is_error for r in outputs)
    assert not outputs[0].is_error, text_of(outputs[0])
    _clean(
        "\n".join(text_of(r) + json.dumps(r.structured_content) for r in outputs), "tool results"
    )
    _clean("\n".join(r.model_dump_json() for r in resources), "resources")
    _clean(tools.model_dump_json(), "tools/list")
    _clean("\n".join(seen), "notifications")
    log = stderr.read_text("utf-8", errors="replace")
    assert "GET /me" in log  # DEBUG logging really was on
    _clean(log, "the server's stderr")


async def test_hosted_load_many_clients_no_errors_no_cross_user_data(tmp_path: Path) -> None:
    """24 concurrent streamable-HTTP sessions of three users. The free user's eight
    sessions overrun its 60 requests a minute: the 429s are absorbed by waiting out the
    window on a clock the test holds (the sandbox's and the API client's), so the run
    takes seconds, not the real minute."""
    clock = FakeClock(start=time.time())
    sandbox = create_app(SandboxConfig(db=":memory:", clock=clock))
    settings = Settings.load(
        environ={},
        base_url="http://sandbox.local/api/v1",
        state_dir=tmp_path / "state",
        require_key=False,
    )
    server = build_server(
        settings,
        transport=SandboxTransport(sandbox),
        stdio=False,
        hosted=HostedOptions(auth="per-user", public_url="http://127.0.0.1"),
        clock=clock,
    )
    app = build_http_app(server, kind="http", host="127.0.0.1")
    users = {DEMO_KEY: "Dana Demo", SECOND_PRO_KEY: "Priya Pro", FREE_KEY: "Frank Free"}
    failures: list[str] = []
    calls = 0

    async def session(key: str, n: int) -> None:
        nonlocal calls
        async with Client(http_transport(base, key)) as client:
            for i in range(5):
                me = await client.call_tool("lookup", {"name": "me"})
                trades = await client.call_tool("find_trades", {"limit": 5})
                calls += 2
                if me.is_error or trades.is_error:
                    failures.append(text_of(me) + text_of(trades))
                    continue
                name = (me.structured_content or {})["user"]["name"]
                if name != users[key]:
                    failures.append(f"{users[key]} saw {name}")
                if i == 0:
                    created = await client.call_tool(
                        "create_trade",
                        {
                            "symbol": "ZB",
                            "direction": "long",
                            "net_pnl": n + 0.5,
                            "trade_date": "2026-11-18T10:00",
                        }
                        | ({"account": "Apex 50K"} if key == DEMO_KEY else {}),
                    )
                    calls += 1
                    if created.is_error:
                        failures.append(text_of(created))

    with serve_in_thread(app, path="", lifespan=True) as base:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for n in range(24):
                    tg.start_soon(session, list(users)[n % 3], n)
        seen: dict[str, set[float]] = {}
        for key in users:
            async with Client(http_transport(base, key)) as client:
                rows = (
                    await client.call_tool("find_trades", {"symbol": "ZB", "limit": 200})
                ).structured_content or {}
            seen[key] = {t["net_pnl"] for t in rows["trades"]}
    assert failures == []
    assert calls >= 24 * 10
    # The free key really went past 60 requests a minute, and the window was waited out
    # (on the test's clock): its requests span more than a minute of sandbox time.
    state = sandbox.state.sandbox
    free_id = next(k["key_id"] for k in state.store.all("key") if k["hash"] == hash_key(FREE_KEY))
    moments = sorted(t for t, _, _ in state.pipeline.usage[free_id])
    assert len(moments) > 60
    assert moments[-1] - moments[0] >= 60
    assert clock.sleeps
    for index, key in enumerate(users):
        # Each user sees exactly the trades of their own eight sessions.
        assert seen[key] == {n + 0.5 for n in range(24) if n % 3 == index}
