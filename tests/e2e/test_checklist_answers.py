"""A checklist that cannot be complete keeps what the trader said, names what to ask, and
the trader's later answers finish that same response: one response, one trade."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tradavity_mcp.api.client import RetryPolicy
from tradavity_mcp.sandbox import FaultSpec
from tradavity_mcp.server.writes.call import CALL_ID_META_KEY

from ..kit import data_of, meta, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio

#: What the default pre-trade checklist's required select and rating take.
TO_ASK = ["Bias: long, short or neutral", "Conviction: 1-5"]


async def _setup(client: Client) -> tuple[str, dict[str, Any]]:
    accounts = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"]
    checklist = data_of(
        await client.call_tool("lookup", {"name": "protocols", "query": "pre_trade"})
    )
    return str(accounts[0]["name"]), checklist


def _journal(account: str, answers: dict[str, Any], pnl: float = 48.0) -> dict[str, Any]:
    return {
        "trade": {
            "symbol": "MNQ",
            "direction": "long",
            "quantity": 2,
            "net_pnl": pnl,
            "trade_date": "2026-11-20T09:31",
            "account": account,
        },
        "tags": ["Breakout"],
        "checklist": {"protocol": "pre_trade", "answers": answers},
    }


async def _responses(env: Env, checklist: dict[str, Any], number: int) -> list[dict[str, Any]]:
    """Every response (drafts too) to the checklist on the trade, as Tradavity has them."""
    return await env.api.list_protocol_responses(checklist["id"], trade_number=number, status="all")


async def _answers(env: Env, checklist: dict[str, Any], response_id: int) -> dict[str, Any]:
    """A response's stored answers, by item label."""
    labels = {int(i["id"]): str(i["label"]) for i in checklist["items"]}
    data = await env.api.get_protocol_response(checklist["id"], response_id)
    return {labels[int(a["item_id"])]: a["value"] for a in data["answers"]}


async def _mnq_trades(env: Env, pnl: float) -> list[int]:
    rows = [r async for r in env.api.iter_trades(symbol="MNQ", limit=200)]
    return sorted(r.trade_number for r in rows if r.net_pnl == pnl)


async def test_all_yes_keeps_the_answers_and_names_what_to_ask(client: Client, env: Env) -> None:
    account, checklist = await _setup(client)
    result = await client.call_tool("journal_trade", _journal(account, {"*": "yes"}))
    assert not result.is_error, text_of(result)
    data = data_of(result)
    assert data["outcome"] == "done"  # not partial: nothing failed, nothing is lost
    assert data["steps"]["tags"] == "done"
    assert data["steps"]["checklist"].startswith("draft: 3 answers kept; still to answer")
    assert data["to_answer"] == TO_ASK
    text = text_of(result)
    for ask in TO_ASK:
        assert ask in text
    assert "record_protocol_response" in data["note"]
    number = data["trade_number"]

    # The answers given are on the trade, as one draft response.
    [draft] = await _responses(env, checklist, number)
    assert draft["status"] == "draft"
    assert await _answers(env, checklist, draft["response_id"]) == {
        "Charts are loaded": "1",
        "News in the next 30 minutes?": "yes",
        "Stop placed before entry?": "yes",
    }  # the optional yes/no item too: '*' answers every yes/no item
    trade = await env.api.get_trade(number)
    assert [r["status"] for r in trade.protocol_responses] == ["draft"]

    # The trader answers the two: the same response is completed, still one trade.
    finish = await client.call_tool(
        "record_protocol_response",
        {"protocol": "pre_trade", "trade_number": number,
         "answers": {"Bias": "Short", "Conviction": 4}},
    )  # fmt: skip
    assert not finish.is_error, text_of(finish)
    done = data_of(finish)
    assert done["status"] == "completed"
    assert done["response_id"] == draft["response_id"]
    assert "to_answer" not in done
    assert text_of(finish).startswith("Updated 'Pre-Trade Checklist' (completed, 5 answers)")
    [completed] = await _responses(env, checklist, number)
    assert completed["response_id"] == draft["response_id"]
    assert completed["status"] == "completed"
    assert await _answers(env, checklist, draft["response_id"]) == {
        "Charts are loaded": "1",
        "News in the next 30 minutes?": "yes",
        "Bias": "short",
        "Conviction": 4,
        "Stop placed before entry?": "yes",
    }
    assert await _mnq_trades(env, 48.0) == [number]
    trade = await env.api.get_trade(number)
    assert [(r["status"], r["completion_pct"]) for r in trade.protocol_responses] == [
        ("completed", round(100 * 5 / len(checklist["items"]), 1))
    ]


async def test_journal_trade_again_with_the_answers_finishes_the_same_response(
    client: Client, env: Env
) -> None:
    account, checklist = await _setup(client)
    first = data_of(await client.call_tool("journal_trade", _journal(account, {"*": "yes"}, 61)))
    number = first["trade_number"]
    [draft] = await _responses(env, checklist, number)

    full = {"*": "yes", "Bias": "long", "Conviction": 5}
    again = await client.call_tool("journal_trade", _journal(account, full, 61))
    data = data_of(again)
    assert data["outcome"] == "done", text_of(again)
    assert data["trade_number"] == number
    assert data["steps"] == {
        "create": "done (earlier)",
        "tags": "done (earlier)",
        "checklist": "done",
    }
    [completed] = await _responses(env, checklist, number)
    assert completed["response_id"] == draft["response_id"]
    assert completed["status"] == "completed"
    assert (await _answers(env, checklist, draft["response_id"]))["Conviction"] == 5
    assert await _mnq_trades(env, 61.0) == [number]

    # The same finishing call once more: held back as the same intent, nothing written.
    before = env.sandbox.counters["requests"]
    twice = data_of(await client.call_tool("journal_trade", _journal(account, full, 61)))
    assert twice["outcome"] == "suspected_duplicate"
    assert env.sandbox.counters["requests"] == before
    assert await _mnq_trades(env, 61.0) == [number]


async def test_a_later_all_yes_never_overwrites_an_explicit_no(client: Client, env: Env) -> None:
    account, checklist = await _setup(client)
    said = {"*": "yes", "News in the next 30 minutes?": "no", "Bias": "neutral"}
    first = data_of(await client.call_tool("journal_trade", _journal(account, said, 15.5)))
    assert first["to_answer"] == ["Conviction: 1-5"]
    number = first["trade_number"]
    finish = data_of(
        await client.call_tool(
            "record_protocol_response",
            {
                "protocol": "Pre-Trade Checklist",
                "trade_number": number,
                "answers": {"*": "yes", "Conviction": 2},
            },
        )
    )
    assert finish["status"] == "completed"
    answers = await _answers(env, checklist, finish["response_id"])
    assert answers["News in the next 30 minutes?"] == "no"
    assert answers["Bias"] == "neutral"
    assert answers["Conviction"] == 2
    assert len(await _responses(env, checklist, number)) == 1


async def test_a_partial_answer_stays_a_draft_and_asks_for_the_rest(
    client: Client, env: Env
) -> None:
    account, checklist = await _setup(client)
    first = data_of(await client.call_tool("journal_trade", _journal(account, {"*": "yes"}, 9)))
    number = first["trade_number"]
    half = await client.call_tool(
        "record_protocol_response",
        {"protocol": "pre_trade", "trade_number": number, "answers": {"Bias": "long"}},
    )
    data = data_of(half)
    assert data["status"] == "draft"
    assert data["to_answer"] == ["Conviction: 1-5"]
    assert "Conviction: 1-5" in data["note"]
    [draft] = await _responses(env, checklist, number)
    assert draft["status"] == "draft"
    assert (await _answers(env, checklist, draft["response_id"]))["Bias"] == "long"


async def test_a_bad_answer_is_refused_and_nothing_is_lost(client: Client, env: Env) -> None:
    account, checklist = await _setup(client)
    first = data_of(await client.call_tool("journal_trade", _journal(account, {"*": "yes"}, 3)))
    number = first["trade_number"]
    bad = await client.call_tool(
        "record_protocol_response",
        {"protocol": "pre_trade", "trade_number": number,
         "answers": {"Bias": "sideways", "Conviction": 4}},
    )  # fmt: skip
    assert bad.is_error
    assert "'Bias' (select) accepts one of 'long', 'short', 'neutral'" in text_of(bad)
    [draft] = await _responses(env, checklist, number)
    assert draft["status"] == "draft"
    assert len(await _answers(env, checklist, draft["response_id"])) == 3


@pytest.mark.parametrize("attempts", [8, 1], ids=["retried", "left-pending"])
async def test_finishing_is_exactly_once_when_its_answer_is_lost(env: Env, attempts: int) -> None:
    """The finishing write lands but its answer is lost: the client's retry gets the API's
    replay, or (no retries) the call is left pending and finished by the same call again
    under the same key. Either way: one completed response, one trade."""
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.005, max_delay=0.02)
    async with Client(env.server(retry=retry)) as client:
        account, checklist = await _setup(client)
        first = data_of(
            await client.call_tool("journal_trade", _journal(account, {"*": "yes"}, 27))
        )
        number = first["trade_number"]
        args = {
            "protocol": "pre_trade",
            "trade_number": number,
            "answers": {"Bias": "short", "Conviction": 3},
        }
        call_meta = meta({CALL_ID_META_KEY: "finish-27"})
        env.sandbox.set_faults(FaultSpec.parse("drop_after_commit=1"))
        data = data_of(await client.call_tool("record_protocol_response", args, meta=call_meta))
        env.sandbox.set_faults(None)
        assert env.sandbox.counters["drop_after_commit"] >= 1
        if attempts == 1:
            assert data["outcome"] == "pending"
            assert "do not call again" in data["note"]
            data = data_of(await client.call_tool("record_protocol_response", args, meta=call_meta))
        assert env.sandbox.counters["replays"] >= 1
        assert data["outcome"] == "done"
        assert data["status"] == "completed"
        replay = data_of(await client.call_tool("record_protocol_response", args, meta=call_meta))
        assert replay["outcome"] == "replayed"
    [completed] = await _responses(env, checklist, number)
    assert completed["status"] == "completed"
    assert await _mnq_trades(env, 27.0) == [number]
