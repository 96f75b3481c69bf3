"""Writes follow the user's intent on a host that sends no tool-use id.

A real MCP client sends no `_meta` call id (as Claude Desktop, ChatGPT, Cursor and the
Inspector do) to our server, which talks to the sandbox over real loopback HTTP. The
server's clock is the sandbox's, so the duplicate window can pass in a moment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import FAST_RETRY, NOW, SANDBOX_URL, SandboxTime, data_of, meta, text_of

pytestmark = pytest.mark.anyio

WINDOW = 120.0


@dataclass
class World:
    client: Client
    api: TradavityClient
    clock: ManualClock
    sandbox: Any
    account: str

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        data = data_of(result)
        data["text"] = text_of(result)
        return data

    async def trades(self, symbol: str) -> list[int]:
        return [r.trade_number async for r in self.api.iter_trades(symbol=symbol, limit=200)]


@pytest.fixture
def sandbox_url() -> Iterator[tuple[str, Any, ManualClock]]:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    with serve_in_thread(app) as url:
        yield url, app, clock


@pytest.fixture
async def world(sandbox_url: tuple[str, Any, ManualClock], tmp_path: Path) -> AsyncIterator[World]:
    url, app, clock = sandbox_url
    charts = tmp_path / "charts"
    charts.mkdir()
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY, "TRADAVITY_DUPLICATE_WINDOW": str(WINDOW)},
        base_url=url,
        state_dir=tmp_path / "state",
        allowed_dirs=[str(charts)],
    )
    server = build_server(settings, clock=SandboxTime(clock))
    async with (
        Client(server) as client,
        TradavityClient(DEMO_KEY, base_url=url) as api,
    ):
        accounts = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"]
        yield World(client, api, clock, app.state.sandbox, accounts[0]["name"])


def _trade(world: World, symbol: str, pnl: float, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "direction": "long",
        "net_pnl": pnl,
        "trade_date": "2026-11-20T09:31",
        "account": world.account,
        **extra,
    }


async def test_grade_b_a_b_ends_at_b(world: World) -> None:
    number = (await world.call("create_trade", _trade(world, "MNQ", 48.5)))["trade_number"]
    for grade in ("B", "A", "B"):
        done = await world.call(
            "update_trade", {"trade_number": number, "changes": {"trade_quality_grade": grade}}
        )
        assert done["outcome"] == "done", done["text"]
        assert f"grade {grade}" in done["text"]
    assert (await world.api.get_trade(number)).grade == "B"


async def test_add_remove_add_ends_with_the_tag(world: World) -> None:
    number = (await world.call("create_trade", _trade(world, "MES", 12.0)))["trade_number"]
    for mode in ("add", "remove", "add"):
        done = await world.call(
            "tag_trade", {"trade_number": number, "tags": ["fomo"], "mode": mode}
        )
        assert done["outcome"] == "done", done["text"]
    names = [str(t.get("name")).casefold() for t in (await world.api.get_trade(number)).tags]
    assert names == ["fomo"]


async def test_identical_create_inside_the_window_is_held_back_then_written(world: World) -> None:
    args = _trade(world, "M2K", 33.25, trade_date="now")
    first = await world.call("create_trade", args)
    assert first["outcome"] == "done"
    world.clock.advance(70)  # a second scalp, 70 s later, said the same way
    twin = await world.call("create_trade", args)
    assert twin["outcome"] == "suspected_duplicate"
    assert twin["trade_number"] == first["trade_number"]
    assert "nothing new was written" in twin["text"]
    assert "allow_duplicate" in twin["text"]
    assert len(await world.trades("M2K")) == 1
    # The user confirms it is a second trade: written.
    second = await world.call("create_trade", {**args, "allow_duplicate": True})
    assert second["outcome"] == "done"
    assert second["trade_number"] != first["trade_number"]
    assert len(await world.trades("M2K")) == 2
    # After the window the same words are a new trade.
    world.clock.advance(WINDOW + 1)
    third = await world.call("create_trade", args)
    assert third["outcome"] == "done"
    assert len(await world.trades("M2K")) == 3


async def test_partial_then_corrected_continues_the_same_trade(world: World, b64png: str) -> None:
    journal = {
        "trade": _trade(world, "MYM", -21.5),
        "tags": ["fomo", "no such tag"],
        "screenshot": {"data": b64png, "filename": "chart.png", "label": "entry"},
    }
    partial = await world.call("journal_trade", journal)
    assert partial["outcome"] == "partial"
    assert partial["steps"]["tags"].startswith("failed")
    assert partial["steps"]["screenshot"] == "done"
    number = partial["trade_number"]
    # The model corrects the tag and sends the whole call again (no id, as hosts do).
    fixed = await world.call("journal_trade", {**journal, "tags": ["fomo", "revenge"]})
    assert fixed["outcome"] == "done", fixed["text"]
    assert fixed["trade_number"] == number
    assert fixed["steps"] == {"create": "done (earlier)", "tags": "done",
                              "screenshot": "done (earlier)"}  # fmt: skip
    assert "continues trade" in fixed["text"]
    assert await world.trades("MYM") == [number]
    trade = await world.api.get_trade(number)
    assert sorted(str(t.get("name")).casefold() for t in trade.tags) == ["fomo", "revenge"]
    assert len(await world.api.list_screenshots(number)) == 1


async def test_double_dispatch_without_ids_at_once_writes_once(world: World) -> None:
    """The same call twice, concurrently, with the API slow enough that both are in
    flight together."""
    from tradavity_mcp.sandbox import FaultSpec

    world.sandbox.set_faults(FaultSpec(latency_ms=150))
    args = _trade(world, "MGC", 7.75)
    outcomes: list[dict[str, Any]] = []

    async def send() -> None:
        outcomes.append(await world.call("create_trade", args))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        tg.start_soon(send)
    world.sandbox.set_faults(None)
    assert sorted(o["outcome"] for o in outcomes) == ["done", "suspected_duplicate"]
    assert len({o["trade_number"] for o in outcomes}) == 1
    assert len(await world.trades("MGC")) == 1


class DropAfterCommit(httpx2.AsyncBaseTransport):
    """The sandbox, whose answers to writes matching `path` are lost after it committed
    them (while `on`): the client sees a broken connection every time."""

    def __init__(self, app: Any, method: str, path: str) -> None:
        self.inner = SandboxTransport(app)
        self.method, self.path, self.on = method, path, True

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if self.on and request.method == self.method and request.url.path.endswith(self.path):
            raise httpx2.ReadError("connection reset after the write (drill)", request=request)
        return response


@pytest.mark.parametrize(
    ("method", "path", "pending_step"),
    [("POST", "/trades", "create"), ("POST", "/screenshots", "screenshot")],
)
async def test_pending_past_the_replay_window_is_found_not_written_again(
    tmp_path: Path, b64png: str, method: str, path: str, pending_step: str
) -> None:
    """A write that landed but was never confirmed, re-issued a day later (the API no
    longer remembers its key): it is looked for and adopted, not written a second time."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    transport = DropAfterCommit(app, method, path)
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=tmp_path
    )
    server = build_server(settings, transport=transport, clock=SandboxTime(clock), retry=FAST_RETRY)
    call_meta = meta({"claudecode/toolUseId": "toolu_day_old"})
    args = {
        "trade": {**_trade_at("MBT", 77.5), "account": "Apex 50K"},
        "tags": ["fomo"],
        "screenshot": {"data": b64png, "filename": "c.png", "label": "day old"},
    }
    async with Client(server) as client:
        first = await client.call_tool("journal_trade", args, meta=call_meta)
        assert data_of(first)["outcome"] == "pending"
        assert f"pending at step: {pending_step}" in text_of(first)
        clock.advance(25 * 3600)
        transport.on = False
        app.state.sandbox.request_log.clear()
        again = data_of(await client.call_tool("journal_trade", args, meta=call_meta))
    assert again["outcome"] == "done", again
    posts = [r.path for r in app.state.sandbox.request_log if r.method == method]
    assert not any(p.endswith(path) for p in posts), posts  # found, not sent again
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        rows = [r async for r in api.iter_trades(symbol="MBT", limit=200) if r.net_pnl == 77.5]
        assert len(rows) == 1
        assert rows[0].trade_number == again["trade_number"]
        assert len(await api.list_screenshots(rows[0].trade_number)) == 1


def _trade_at(symbol: str, pnl: float) -> dict[str, Any]:
    return {"symbol": symbol, "direction": "long", "net_pnl": pnl, "trade_date": "2026-11-20T09:31"}
