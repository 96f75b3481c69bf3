"""update_trade through a real MCP client: a strategy move drops the old strategy's
setup and says so; null clears a stop; a setup alone finds its strategy."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from ..kit import data_of, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


def _trade(**extra: Any) -> dict[str, Any]:
    return {
        "symbol": "MNQ",
        "direction": "long",
        "net_pnl": 48.5,
        "trade_date": "2026-11-20T09:31",
        "account": "Apex 50K",
        **extra,
    }


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, dict) else value


async def test_moving_a_trade_to_another_strategy_drops_the_old_setup(
    client: Client, env: Env
) -> None:
    created = data_of(
        await client.call_tool(
            "create_trade", _trade(strategy="Opening Range Breakout", setup="ORB Long")
        )
    )
    number = created["trade_number"]
    moved = await client.call_tool(
        "update_trade", {"trade_number": number, "changes": {"strategy": "Trend Pullback"}}
    )
    assert data_of(moved)["outcome"] == "done"
    assert "setup 'ORB Long' belongs to the old strategy, so it was cleared" in text_of(moved)
    trade = await env.api.get_trade(number)
    assert _name(trade.strategy) == "Trend Pullback"
    assert trade.setup is None
    # A move that names a setup of the new strategy keeps it.
    kept = await client.call_tool(
        "update_trade",
        {
            "trade_number": number,
            "changes": {"strategy": "Trend Pullback", "setup": "VWAP Reclaim"},
        },
    )
    assert "cleared" not in text_of(kept)
    assert _name((await env.api.get_trade(number)).setup) == "VWAP Reclaim"


async def test_a_setup_alone_brings_its_strategy(client: Client, env: Env) -> None:
    number = data_of(await client.call_tool("create_trade", _trade(setup="Failed Breakout")))[
        "trade_number"
    ]
    trade = await env.api.get_trade(number)
    assert _name(trade.strategy) == "Mean Reversion"
    assert _name(trade.setup) == "Failed Breakout"


async def test_null_clears_a_stop(client: Client, env: Env) -> None:
    number = data_of(
        await client.call_tool("create_trade", _trade(sl_price=21000.5, tp_price=21100))
    )["trade_number"]
    before = await env.api.get_trade(number)
    assert before.model_dump().get("sl_price") == 21000.5
    cleared = await client.call_tool(
        "update_trade", {"trade_number": number, "changes": {"sl_price": None}}
    )
    assert data_of(cleared)["outcome"] == "done", text_of(cleared)
    after = (await env.api.get_trade(number)).model_dump()
    assert after.get("sl_price") is None
    assert after.get("tp_price") == 21100
