"""The argument errors of #25, each as the line a person sees, and nothing written.

Through a real MCP client on the sandbox: an unknown key inside `trade` is named with
the fields that part takes (the closest first); a screenshot's bad base64 is said once;
`grade`, the name reads use, is taken where the write says `trade_quality_grade`; a
fixed field in update_trade's changes says to archive and journal anew; an argument a
tool does not have is refused, not dropped.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from ..kit import data_of, plain_trade, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


def _trade(**extra: Any) -> dict[str, Any]:
    return {**plain_trade(48.5), **extra}


async def _newest(env: Env) -> int:
    return (await env.api.list_trades(limit=1)).items[0].trade_number


async def test_an_unknown_key_inside_trade_is_named(client: Client, env: Env) -> None:
    before = await _newest(env)
    result = await client.call_tool("journal_trade", {"trade": _trade(stop_loss=21000)})
    assert result.is_error
    line = text_of(result)
    assert line.startswith(
        "invalid arguments for journal_trade: trade.stop_loss is not a field this accepts "
        "(stop_loss: did you mean sl_price? trade takes account, asset_config, "
    )
    assert "trade is not a field" not in line
    assert await _newest(env) == before


async def test_bad_base64_is_said_once(client: Client, env: Env) -> None:
    before = await _newest(env)
    result = await client.call_tool(
        "journal_trade",
        {"trade": _trade(), "screenshot": {"data": "not base64!!", "filename": "c.png"}},
    )
    assert result.is_error
    assert text_of(result) == (
        "invalid arguments for journal_trade: screenshot data is not valid base64: send the "
        "file's bytes encoded as base64 (a data: URL works too)"
    )
    assert await _newest(env) == before


async def test_grade_is_taken_for_trade_quality_grade(client: Client, env: Env) -> None:
    """In update_trade's changes, in journal_trade's trade and as create_trade's own
    argument: the name get_trade returns is the name the write takes."""
    created = data_of(await client.call_tool("create_trade", _trade(grade="b")))
    number = created["trade_number"]
    assert created["grade"] == "B"
    assert (await env.api.get_trade(number)).grade == "B"

    updated = await client.call_tool(
        "update_trade", {"trade_number": number, "changes": {"grade": "A"}}
    )
    assert not updated.is_error, text_of(updated)
    assert text_of(updated).startswith(f"Updated trade #{number} MNQ long")
    assert "grade A" in text_of(updated)
    assert (await env.api.get_trade(number)).grade == "A"

    journaled = data_of(
        await client.call_tool("journal_trade", {"trade": _trade(net_pnl=12, grade="C")})
    )
    assert (await env.api.get_trade(journaled["trade_number"])).grade == "C"

    both = await client.call_tool(
        "update_trade",
        {"trade_number": number, "changes": {"grade": "A", "trade_quality_grade": "F"}},
    )
    assert both.is_error
    assert text_of(both) == (
        "invalid arguments for update_trade: changes grade and trade_quality_grade are the "
        "same field (reads say grade); send one of them"
    )
    assert (await env.api.get_trade(number)).grade == "A"


async def test_a_fixed_field_says_archive_and_journal_anew(client: Client, env: Env) -> None:
    number = data_of(await client.call_tool("create_trade", _trade()))["trade_number"]
    result = await client.call_tool(
        "update_trade", {"trade_number": number, "changes": {"net_pnl": 60}}
    )
    assert result.is_error
    assert text_of(result) == (
        "invalid arguments for update_trade: changes.net_pnl cannot be changed once a trade "
        "is journaled: archive this trade (archive_trade) and journal it again with the "
        "right value"
    )
    assert (await env.api.get_trade(number)).net_pnl == 48.5


async def test_an_argument_a_tool_lacks_is_refused_not_dropped(client: Client, env: Env) -> None:
    """The SDK would drop it silently (the trade journaled without it)."""
    before = await _newest(env)
    result = await client.call_tool("create_trade", _trade(stop=21000))
    assert result.is_error
    assert text_of(result).startswith(
        "invalid arguments for create_trade: stop (did you mean sl_price?) is not an "
        "argument of create_trade; it takes account, allow_duplicate, "
    )
    assert text_of(result).endswith("volume. Nothing was done.")
    assert await _newest(env) == before
