"""Counts say what they count: "trades" are rows (copies included), "decisions" count a
copied trade once, and every list marks copies and archived trades."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from mcp import Client

from ..kit import data_of, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _window(client: Client) -> dict[str, str]:
    """The last 30 days as explicit dates (the same days for every tool)."""
    stats = data_of(await client.call_tool("get_stats", {"range": "30d"}))
    return {"from_date": stats["range"]["from"], "to_date": stats["range"]["to"]}


async def test_trades_and_decisions_are_never_one_word(client: Client, env: Env) -> None:
    window = await _window(client)
    stats = data_of(await client.call_tool("get_stats", window))
    calendar = data_of(await client.call_tool("get_calendar", window))
    copies = data_of(
        await client.call_tool("find_trades", {**window, "is_copy": True, "limit": 200})
    )["count"]
    assert copies > 0, "the seeded month has copy trades"

    # The calendar counts decisions, and calls them so: never "trades".
    assert all("trade_count" not in d and "winning_trades" not in d for d in calendar["days"])
    assert "total_trades" not in calendar["summary"]
    days = calendar["days"]
    assert sum(d["decisions"] for d in days) == calendar["summary"]["decisions"]
    assert calendar["summary"]["decisions"] == stats["decisions"]["count"]
    # Trades (rows) are the decisions and their copies.
    assert stats["totals"]["trade_rows"] == stats["decisions"]["count"] + copies
    assert round(sum(d["net_pnl"] for d in days), 2) == stats["totals"]["total_net_pnl"]
    for row in days:
        assert row["winning_decisions"] + row["losing_decisions"] <= row["decisions"]

    # The resource reads the same, in the same words.
    uri = f"tradavity://calendar?from_date={window['from_date']}&to_date={window['to_date']}"
    resource = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
    assert resource["summary"]["decisions"] == calendar["summary"]["decisions"]
    assert "trade_count" not in json.dumps(resource)


def _line(text: str, number: int) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"#{number} "))


async def test_copies_and_archived_trades_are_marked_in_lists(client: Client, env: Env) -> None:
    window = await _window(client)
    listed = await client.call_tool("find_trades", {**window, "limit": 80})
    rows: list[dict[str, Any]] = data_of(listed)["trades"]
    copies = [r for r in rows if r.get("is_copy")]
    assert copies
    assert len(copies) < len(rows)
    for row in rows:
        line = _line(text_of(listed), row["trade_number"])
        assert line.endswith(" (copy)") == bool(row.get("is_copy")), line
        assert "archived" not in line

    # A trade archived and journaled again: both listed with include_archived, the
    # archived one marked, its replacement not.
    account = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"][0]["name"]
    day = (date.fromisoformat(window["to_date"]) - timedelta(days=3)).isoformat()
    trade = {
        "symbol": "ES",
        "direction": "short",
        "trade_date": f"{day}T10:05",
        "account": account,
    }
    wrong = data_of(await client.call_tool("create_trade", {**trade, "net_pnl": -212.5}))
    data_of(await client.call_tool("archive_trade", {"trade_number": wrong["trade_number"]}))
    right = data_of(await client.call_tool("create_trade", {**trade, "net_pnl": -221.5}))

    both = await client.call_tool(
        "find_trades",
        {"from_date": day, "to_date": day, "symbol": "ES", "include_archived": True},
    )
    marked = {r["trade_number"]: r.get("archived", False) for r in data_of(both)["trades"]}
    assert marked[wrong["trade_number"]] is True
    assert marked[right["trade_number"]] is False
    assert _line(text_of(both), wrong["trade_number"]).endswith(" (archived)")
    assert "archived" not in _line(text_of(both), right["trade_number"])
    # Without include_archived the archived trade is not listed at all.
    active = data_of(
        await client.call_tool("find_trades", {"from_date": day, "to_date": day, "symbol": "ES"})
    )["trades"]
    assert wrong["trade_number"] not in {r["trade_number"] for r in active}
