"""Never twice, never lost: replays, restarts, double dispatch and dropped responses."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tradavity_mcp.sandbox import DEMO_KEY, FaultSpec, SandboxConfig, create_app, serve_in_thread
from tradavity_mcp.server.writes.call import CALL_ID_META_KEY

from ..kit import data_of, meta, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _setup(client: Client) -> dict[str, Any]:
    accounts = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"]
    tags = [t["name"] for t in data_of(await client.call_tool("lookup", {"name": "tags"}))["items"]]
    checklist = data_of(
        await client.call_tool("lookup", {"name": "protocols", "query": "pre_trade"})
    )
    answers: dict[str, Any] = {"*": "yes"}
    for item in checklist["items"]:
        if item["type"] == "select":
            answers[item["label"]] = item["options"][0]
        elif item["type"] == "rating":
            answers[item["label"]] = 3
        elif item["type"] == "number":
            answers[item["label"]] = 2
        elif item["type"] == "text":
            answers[item["label"]] = "ok"
    return {
        "account": accounts[0]["name"],
        "tags": tags[:2],
        "answers": answers,
        "protocol_id": checklist["id"],
    }


def _journal(setup: dict[str, Any], pnl: float, png: str) -> dict[str, Any]:
    return {
        "trade": {
            "symbol": "MES",
            "direction": "short",
            "net_pnl": pnl,
            "trade_date": "2026-11-19T10:15",
            "account": setup["account"],
        },
        "tags": setup["tags"],
        "screenshot": {"data": png, "filename": "c.png", "label": f"pnl {pnl}"},
        "checklist": {"protocol": "pre_trade", "answers": setup["answers"]},
    }


async def _verify(env: Env, setup: dict[str, Any], numbers: list[int], pnls: list[float]) -> None:
    """Through the API: exactly these trades, each with exactly its parts."""
    rows = [r async for r in env.api.iter_trades(symbol="MES", limit=200)]
    mine = sorted(r.trade_number for r in rows if r.net_pnl in pnls)
    assert mine == sorted(numbers)
    for number in numbers:
        trade = await env.api.get_trade(number)
        assert sorted(str(t.get("name")) for t in trade.tags) == sorted(setup["tags"])
        assert len(await env.api.list_screenshots(number)) == 1
        responses = await env.api.list_protocol_responses(setup["protocol_id"], trade_number=number)
        assert len(responses) == 1


async def test_same_call_replays_without_an_api_request(env: Env, era: str, b64png: str) -> None:
    async with Client(env.server(), mode=era) as client:
        setup = await _setup(client)
        call_meta = meta({CALL_ID_META_KEY: "voice-note-42"})
        first = data_of(
            await client.call_tool("journal_trade", _journal(setup, -37.5, b64png), meta=call_meta)
        )
        before = env.sandbox.counters["requests"]
        again = await client.call_tool(
            "journal_trade", _journal(setup, -37.5, b64png), meta=call_meta
        )
        assert env.sandbox.counters["requests"] == before
        assert data_of(again)["outcome"] == "replayed"
        assert data_of(again)["trade_number"] == first["trade_number"]
        assert "nothing was sent" in text_of(again)
        other = await client.call_tool(
            "journal_trade", _journal(setup, -38.0, b64png), meta=call_meta
        )
        assert other.is_error
        assert "other arguments" in text_of(other)
    await _verify(env, setup, [first["trade_number"]], [-37.5])


async def test_replay_survives_a_restart(env: Env, b64png: str) -> None:
    call_meta = meta({"claudecode/toolUseId": "toolu_01ABC"})
    async with Client(env.server()) as client:
        setup = await _setup(client)
        first = data_of(
            await client.call_tool("journal_trade", _journal(setup, 12.25, b64png), meta=call_meta)
        )
    # A new server process would open the same ledger: a new server on the same state dir.
    async with Client(env.server()) as client:
        before = env.sandbox.counters["requests"]
        again = data_of(
            await client.call_tool("journal_trade", _journal(setup, 12.25, b64png), meta=call_meta)
        )
        # The replay itself costs nothing (start-up reads /me once, at most).
        assert env.sandbox.counters["requests"] - before <= 1
    assert again["outcome"] == "replayed"
    assert again["trade_number"] == first["trade_number"]
    await _verify(env, setup, [first["trade_number"]], [12.25])


async def test_double_dispatch_under_two_host_ids(env: Env, era: str, b64png: str) -> None:
    async with Client(env.server(), mode=era) as client:
        setup = await _setup(client)
        args = _journal(setup, 61.0, b64png)
        first = data_of(
            await client.call_tool("journal_trade", args, meta=meta({"vscode.requestId": "r1"}))
        )
        second = data_of(
            await client.call_tool("journal_trade", args, meta=meta({"vscode.requestId": "r2"}))
        )
        assert second["outcome"] == "suspected_duplicate"
        assert second["trade_number"] == first["trade_number"]
        wanted = data_of(
            await client.call_tool(
                "journal_trade",
                {**args, "allow_duplicate": True},
                meta=meta({"vscode.requestId": "r3"}),
            )
        )
        assert wanted["outcome"] == "done"
        assert wanted["trade_number"] != first["trade_number"]
    await _verify(env, setup, [first["trade_number"], wanted["trade_number"]], [61.0])


async def test_dropped_responses_never_double_a_write(env: Env, b64png: str) -> None:
    async with Client(env.server()) as client:
        setup = await _setup(client)
        env.sandbox.set_faults(FaultSpec.parse("drop_after_commit=0.2"))
        numbers: list[int] = []
        pnls = [100.0 + i for i in range(8)]
        for i, pnl in enumerate(pnls):
            call_meta = meta({CALL_ID_META_KEY: f"drop-{i}"})
            data = data_of(
                await client.call_tool(
                    "journal_trade", _journal(setup, pnl, b64png), meta=call_meta
                )
            )
            while data["outcome"] == "pending":  # the resumer's job, done here at once
                data = data_of(
                    await client.call_tool(
                        "journal_trade", _journal(setup, pnl, b64png), meta=call_meta
                    )
                )
            assert data["outcome"] == "done", data
            numbers.append(data["trade_number"])
        env.sandbox.set_faults(None)
    assert env.sandbox.counters["drop_after_commit"] > 0
    await _verify(env, setup, numbers, pnls)


async def test_journaling_over_a_real_stdio_subprocess(tmp_path: Any, b64png: str) -> None:
    app = create_app(SandboxConfig(db=":memory:"))
    with serve_in_thread(app) as base_url:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tradavity_mcp"],
            env={
                "TRADAVITY_API_KEY": DEMO_KEY,
                "TRADAVITY_BASE_URL": base_url,
                "TRADAVITY_STATE_DIR": str(tmp_path / "state"),
            },
        )
        async with Client(params) as client:
            setup = await _setup(client)
            result = await client.call_tool("journal_trade", _journal(setup, 7.75, b64png))
            data = data_of(result)
            assert data["outcome"] == "done"
            assert DEMO_KEY not in text_of(result)


async def test_a_desktop_session_loads_none_of_the_hosted_dependencies(
    tmp_path: Any, b64png: str
) -> None:
    """Stdio (the desktop, the .mcpb): PostgreSQL, Redis and our uses of cryptography
    are the `hosted` extra's, and a whole session (tools, a journaled trade with a
    chart, the calendar picture) imports none of them."""
    loaded = tmp_path / "modules.txt"
    watch = (
        "import atexit, runpy, sys; "
        f"atexit.register(lambda: open({str(loaded)!r}, 'w').write('\\n'.join(sys.modules))); "
        "sys.argv = ['tradavity-mcp']; runpy.run_module('tradavity_mcp', run_name='__main__')"
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", watch],
        env={
            "TRADAVITY_SANDBOX": "1",
            "TRADAVITY_SANDBOX_DB": str(tmp_path / "sandbox.sqlite3"),
            "TRADAVITY_STATE_DIR": str(tmp_path / "state"),
        },
    )
    async with Client(params) as client:
        setup = await _setup(client)
        result = await client.call_tool("journal_trade", _journal(setup, 3.5, b64png))
        assert data_of(result)["outcome"] == "done"
        picture = await client.call_tool("get_calendar", {"range": "30d", "format": "image"})
        assert not picture.is_error, text_of(picture)
    # The client closed the server's stdin and waited for it: the process has exited.
    modules = set(loaded.read_text("utf-8").split())
    assert "tradavity_mcp.server.app" in modules  # the watch saw the server
    hosted = sorted(m for m in modules if m.split(".")[0] in {"psycopg", "redis"})
    assert hosted == []
    # cryptography comes with the MCP SDK itself (pyjwt[crypto]); ours is hosted only.
    ours = {"tradavity_mcp.server.oauth.crypto", "tradavity_mcp.server.replicas.secret"}
    assert not ours & modules
    assert not {m for m in modules if m.startswith("tradavity_mcp.server.oauth")}
