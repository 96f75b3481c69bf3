"""Issue 13 through a real MCP client against the sandbox: names found past the first page,
archived accounts that share a name, and a broker that fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import Client

from tradavity_mcp.sandbox import FaultSpec
from tradavity_mcp.server.errors import UserError
from tradavity_mcp.server.refdata import RefData

from ..kit import data_of, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio

TRADE = {
    "trade_date": "2026-05-10T14:32:00Z",
    "symbol": "MNQ",
    "direction": "long",
    "net_pnl": 48.0,
}


async def _seed_tags(env: Env, count: int = 130) -> None:
    for i in range(count):
        await env.api.create_tag(
            {"category_id": 2, "name": f"Extra {i:03d}"}, idempotency_key=f"x{i}"
        )


def _requests(env: Env, method: str, suffix: str) -> list[Any]:
    return [r for r in env.sandbox.request_log if r.method == method and r.path.endswith(suffix)]


async def _new_trade(client: Client, account: str = "Apex 50K") -> int:
    created = data_of(await client.call_tool("create_trade", {**TRADE, "account": account}))
    return int(created["trade_number"])


async def test_a_tag_on_page_three_is_found_by_name(client: Client, env: Env) -> None:
    await _seed_tags(env)
    total = len(await env.api.list_all("/tags", "tags", page_size=50, id_field="tag_id"))
    assert total == 143
    # The default page is 50: "Extra 120" (the 134th tag) is on page three.
    page_three = await env.api.request("GET", "/tags", params={"offset": 100})
    assert "Extra 120" in {t["name"] for t in page_three.data["tags"]}
    first_page = await env.api.request("GET", "/tags")
    assert "Extra 120" not in {t["name"] for t in first_page.data["tags"]}

    number = await _new_trade(client)
    env.sandbox.reset_counters()
    tagged = data_of(
        await client.call_tool(
            "tag_trade",
            {"trade_number": number, "tags": ["extra 120", "FOMO"], "create_missing": True},
        )
    )
    assert not _requests(env, "POST", "/tags")  # nothing re-created, no 409 duplicate_name
    assert not [r for r in env.sandbox.request_log if r.error == "duplicate_name"]
    assert len(_requests(env, "GET", "/tags")) == 1  # every page at once (500 a page)
    assert sorted(tagged["tags"]) == ["Extra 120", "FOMO"]
    trade = await env.api.get_trade(number)
    assert sorted(t["name"] for t in trade.tags) == ["Extra 120", "FOMO"]


async def test_a_tag_made_elsewhere_is_found_after_one_refresh(client: Client, env: Env) -> None:
    number = await _new_trade(client)
    data_of(await client.call_tool("tag_trade", {"trade_number": number, "tags": ["FOMO"]}))
    # Made in the app after the server read (and kept) the tag list.
    await env.api.create_tag({"category_id": 1, "name": "Late Entry"}, idempotency_key="late")
    env.sandbox.reset_counters()
    tagged = data_of(
        await client.call_tool(
            "tag_trade",
            {"trade_number": number, "tags": ["late entry"], "create_missing": True},
        )
    )
    assert "Late Entry" in tagged["tags"]
    assert not _requests(env, "POST", "/tags")
    assert len(_requests(env, "GET", "/tags")) == 1  # the one refresh the miss triggered
    # A name that exists nowhere refreshes once, then fails with suggestions.
    env.sandbox.reset_counters()
    unknown = await client.call_tool("tag_trade", {"trade_number": number, "tags": ["Late Entri"]})
    assert unknown.is_error
    assert "Late Entry" in text_of(unknown)
    assert len(_requests(env, "GET", "/tags")) == 1


async def test_reference_lists_are_kept_past_a_minute(client: Client, env: Env) -> None:
    await _new_trade(client)
    env.sandbox.reset_counters()
    env.clock.advance(3600)
    await _new_trade(client)
    await _new_trade(client, account="topstep xfa")
    assert not _requests(env, "GET", "/accounts")


async def test_a_name_shared_with_an_archived_account_lands_on_the_active_one(
    client: Client, env: Env
) -> None:
    archived = next(a for a in await env.api.list_accounts(include_archived=True) if a.is_archived)
    made = await env.api.request(
        "POST", "/accounts", json={"account_name": archived.account_name}, idempotency_key="dup"
    )
    active_id = made.data["account"]["account_id"]
    assert active_id != archived.id

    number = await _new_trade(client, account=archived.account_name.lower())
    assert (await env.api.get_trade(number)).account["id"] == active_id
    found = data_of(
        await client.call_tool("find_trades", {"account": archived.account_name, "limit": 50})
    )
    assert [t["trade_number"] for t in found["trades"]] == [number]
    stats = data_of(
        await client.call_tool(
            "get_stats", {"kind": "summary", "range": "all", "account": archived.account_name}
        )
    )
    assert stats["totals"]["trade_rows"] == 1


async def test_refdata_resolves_active_first_and_archived_only_when_asked(env: Env) -> None:
    archived = next(a for a in await env.api.list_accounts(include_archived=True) if a.is_archived)
    ref = RefData(env.api)
    # Only an archived account has the name: a write is told so, a read filter gets it.
    with pytest.raises(UserError, match="is archived"):
        await ref.account(archived.account_name)
    assert ref.fetches["accounts"] == 2  # read once, refreshed once on the miss
    assert await ref.account_filter(archived.account_name) == archived.id
    assert await ref.account_filter(str(archived.id)) == archived.id
    assert await ref.account_filter(None) is None
    made = await env.api.request(
        "POST", "/accounts", json={"account_name": archived.account_name}, idempotency_key="dup2"
    )
    active_id = made.data["account"]["account_id"]
    # The new active account is not in the kept list yet: the miss refreshes it once.
    assert (await ref.account(archived.account_name.upper())).id == active_id
    assert await ref.account_filter(archived.account_name) == active_id
    assert ref.fetches["accounts"] == 3
    with pytest.raises(UserError, match="unknown account"):
        await ref.account("Nope Capital")
    assert ref.fetches["accounts"] == 4


async def test_kept_lists_are_refreshed_in_the_background_all_at_once(env: Env) -> None:
    """The background refresh fetches every kept list again in place: a tag made in
    Tradavity meanwhile resolves with no miss, and concurrent askers share one fetch."""
    ref = RefData(env.api)
    first = await asyncio.gather(ref.tags(), ref.tags(), ref.tags())
    assert ref.fetches["tags"] == 1  # three at once, one request
    await ref.accounts()
    body = {"category_id": first[0][0].category_id, "name": "Made Elsewhere"}
    await env.api.create_tag(body, idempotency_key="bg-refresh-1")
    before = env.sandbox.counters["requests"]
    assert await ref.refresh() == 2
    assert env.sandbox.counters["requests"] - before == 2  # tags and accounts, once each
    found, unknown = await ref.resolve_tags(["made elsewhere"])
    assert (unknown, [t.name for t in found]) == ([], ["Made Elsewhere"])
    assert ref.fetches["tags"] == 2  # no miss: the refresh had it


@pytest.mark.parametrize(
    ("fault", "code"),
    [("broker_api_error", "broker_api_error"), ("sync_failed", "sync_failed")],
)
@pytest.mark.parametrize("wait", [False, True])
async def test_a_failing_broker_is_answered_try_later_after_two_requests(
    env: Env, fault: str, code: str, wait: bool
) -> None:
    async with Client(env.server()) as client:
        env.sandbox.set_faults(FaultSpec(**{fault: 1.0}))
        env.sandbox.reset_counters()
        result = await client.call_tool("trigger_sync", {"connection": 1, "wait": wait})
        syncs = _requests(env, "POST", "/autosync/connections/1/sync")
        assert len(syncs) <= 2
        assert syncs[0].error == code
        assert result.is_error
        message = text_of(result)
        assert "the broker failed, try again in a few minutes" in message
        assert code in message
        env.sandbox.set_faults(None)
        status = data_of(await client.call_tool("sync_status", {"connection": 1}))
        conn = status["connections"][0]
        assert conn["state"] == "errored"
        assert "try again in a few minutes" in conn["reason"]
        assert conn["recent_runs"][0]["status"] == "failed"
        # Nothing more was sent to the sync endpoint meanwhile.
        assert len(_requests(env, "POST", "/autosync/connections/1/sync")) == len(syncs) == 2
