"""What the journal means, checked against figures computed by hand from the API: the
breakdowns `get_stats` computes (tag, weekday, hour, grade, setup, checklist), account
health and goals, and the scopes that hide them."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import FREE_KEY, READONLY_KEY, SandboxTransport
from tradavity_mcp.server import build_server
from tradavity_mcp.server.insights import FEW, wilson
from tradavity_mcp.settings import Settings

from ..kit import SANDBOX_URL, SandboxTime, data_of, text_of
from .conftest import Env
from .test_reshaped_api import Reshaping

pytestmark = pytest.mark.anyio

NEW_YORK = ZoneInfo("America/New_York")


async def _window(client: Client) -> dict[str, str]:
    stats = data_of(await client.call_tool("get_stats", {"range": "30d"}))
    return {"from_date": stats["range"]["from"], "to_date": stats["range"]["to"]}


async def _truth(api: TradavityClient, window: dict[str, str]) -> dict[int, list[Any]]:
    """The range's decisions by hand: every row, each copy placed under the source its
    full record names (`source_trade_number`), not under a guess."""
    span = {"from": window["from_date"], "to": window["to_date"]}
    rows = [r async for r in api.iter_trades(**span, limit=200)]
    groups: dict[int, list[Any]] = {}
    for row in rows:
        lead = row.trade_number
        if row.is_copy:
            source = (await api.get_trade(row.trade_number)).model_dump()["source_trade_number"]
            if any(r.trade_number == source for r in rows):
                lead = source
        groups.setdefault(lead, []).append(row)
    return groups


def _classify(pnl: float, offset: dict[str, float]) -> str:
    if offset["low"] <= pnl <= offset["high"]:
        return "breakeven"
    return "win" if pnl > 0 else "loss"


async def test_a_tag_row_is_a_hand_count_of_that_tags_decisions(client: Client, env: Env) -> None:
    window = await _window(client)
    result = await client.call_tool("get_stats", {"kind": "by-tag", **window})
    data = data_of(result)
    truth = await _truth(env.api, window)
    offset = data["breakeven_offset"]
    span = {"from": window["from_date"], "to": window["to_date"]}
    checked = 0
    for tag in ("FOMO", "Breakout", "Revenge"):
        tagged = {r.trade_number async for r in env.api.iter_trades(tag=tag, **span, limit=200)}
        groups = [g for lead, g in truth.items() if tagged & {r.trade_number for r in g}]
        row = next((r for r in data["rows"] if r["tag"] == tag), None)
        if not groups:
            assert row is None
            continue
        assert row is not None, tag
        pnls = [sum(r.net_pnl or 0 for r in g) for g in groups]
        outcomes = [_classify(p, offset) for p in pnls]
        assert row["n"] == len(groups)
        assert row["net_pnl"] == round(sum(pnls), 2)
        assert row["wins"] == outcomes.count("win")
        assert row["losses"] == outcomes.count("loss")
        decided = row["wins"] + row["losses"]
        assert row["win_rate"] == round(100 * row["wins"] / decided, 1)
        assert row["expectancy"] == round(sum(pnls) / len(groups), 2)
        checked += 1
    assert checked >= 2
    # The total is the range's summary, in decisions.
    summary = data_of(await client.call_tool("get_stats", window))
    assert data["total"]["n"] == summary["decisions"]["count"] == len(truth)
    # A row of few decisions says so in the data and the words.
    for row in data["rows"]:
        assert bool(row.get("few")) == (row["n"] < FEW)
    few = [r for r in data["rows"] if r.get("few")]
    assert few, "the seeded month has small tag rows"
    for row in few:
        said = "1 decision" if row["n"] == 1 else f"{row['n']} decisions"
        line = next(x for x in text_of(result).splitlines() if x.startswith(f"{row['tag']}: "))
        assert line.endswith(f"{said}: too few to tell"), line


async def test_weekday_rows_add_up_to_the_summary(client: Client, env: Env) -> None:
    window = await _window(client)
    data = data_of(await client.call_tool("get_stats", {"kind": "by-weekday", **window}))
    summary = data_of(await client.call_tool("get_stats", window))
    rows = data["rows"]
    assert {r["weekday"] for r in rows} <= {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}
    assert sum(r["n"] for r in rows) == summary["decisions"]["count"]
    assert sum(r["wins"] for r in rows) == summary["decisions"]["wins"]
    assert sum(r["losses"] for r in rows) == summary["decisions"]["losses"]
    assert round(sum(r["net_pnl"] for r in rows), 2) == summary["totals"]["total_net_pnl"]
    assert data["trade_rows"] == summary["totals"]["trade_rows"]
    # Each weekday is the user's: a hand count of New York weekdays of the decisions.
    truth = await _truth(env.api, window)
    by_day: dict[str, int] = {}
    for group in truth.values():
        when = datetime.fromisoformat(str(group[0].trade_date).replace("Z", "+00:00"))
        day = f"{when.astimezone(NEW_YORK):%A}"
        by_day[day] = by_day.get(day, 0) + 1
    assert {r["weekday"]: r["n"] for r in rows} == by_day
    # The API's own kinds carry the same figures.
    assert summary["decisions"]["n"] == summary["decisions"]["count"]
    low, high = summary["decisions"]["win_rate_ci"]
    assert low <= summary["decisions"]["win_rate"] <= high
    for kind in ("by-symbol", "by-strategy"):
        for row in data_of(await client.call_tool("get_stats", {"kind": kind, **window}))["rows"]:
            assert row["n"] == row["count"]
            assert bool(row.get("few")) == (row["n"] < FEW)


async def test_hours_are_the_new_york_session_in_local_time(client: Client, env: Env) -> None:
    window = await _window(client)
    result = await client.call_tool("get_stats", {"kind": "by-hour", **window})
    data = data_of(result)
    hours = [r["hour"] for r in data["rows"]]
    # The demo trades 9:30 to 15:30 New York time (14:30 to 20:30 UTC in winter).
    assert hours, "the month has trades"
    assert set(hours) <= {f"{h:02d}:00" for h in range(9, 16)}
    assert "09:00" in hours
    assert sum(r["n"] for r in data["rows"]) == data["total"]["n"]
    assert data["timezone"] == "America/New_York"
    assert "local hours" in text_of(result)


async def test_every_interval_holds_its_rate_and_narrows_with_n(client: Client) -> None:
    assert wilson(0, 0) is None
    low, high = wilson(5, 10)  # type: ignore[misc]
    assert math.isclose(low, 0.2366, abs_tol=1e-4)
    assert math.isclose(high, 0.7634, abs_tol=1e-4)
    low, high = wilson(0, 3)  # type: ignore[misc]
    assert low == 0.0
    assert math.isclose(high, 0.5615, abs_tol=1e-4)
    rows: list[dict[str, Any]] = []
    for kind in ("by-grade", "by-setup", "by-hour", "by-weekday", "by-tag"):
        data = data_of(await client.call_tool("get_stats", {"kind": kind, "range": "90d"}))
        rows += [*data["rows"], data["total"]]
    decided = [r for r in rows if r["wins"] + r["losses"]]
    assert len(decided) > 20
    for row in decided:
        low, high = row["win_rate_ci"]
        assert 0 <= low <= row["win_rate"] <= high <= 100, row
    # Same rate, smaller n: a wider interval (and the total is narrower than any row).
    width = {(r["wins"], r["wins"] + r["losses"]): r["win_rate_ci"] for r in decided}
    total = max(decided, key=lambda r: r["n"])
    smallest = min(decided, key=lambda r: r["wins"] + r["losses"])
    t_low, t_high = total["win_rate_ci"]
    s_low, s_high = smallest["win_rate_ci"]
    assert t_high - t_low < s_high - s_low
    assert len(width) > 5


async def test_a_second_breakdown_reads_little_and_a_write_refreshes_it(
    client: Client, env: Env
) -> None:
    window = await _window(client)
    first = data_of(await client.call_tool("get_stats", {"kind": "by-grade", **window}))
    assert "from_cache" not in first
    second = data_of(await client.call_tool("get_stats", {"kind": "by-weekday", **window}))
    assert second["from_cache"] is True
    assert second["requests"] <= 5
    tags = data_of(await client.call_tool("get_stats", {"kind": "by-tag", **window}))
    again = data_of(await client.call_tool("get_stats", {"kind": "by-tag", **window}))
    assert again["requests"] <= 5
    assert again["rows"] == tags["rows"]
    # Our write drops what was kept: a new tag on a trade shows at once.
    number = await env.api.list_trades(is_copy=False, limit=1, **{"from": window["from_date"]})
    trade = number.items[0].trade_number
    data_of(
        await client.call_tool(
            "tag_trade",
            {"trade_number": trade, "tags": ["Lesson learned"], "create_missing": True,
             "category": "Psychology"},
        )
    )  # fmt: skip
    after = data_of(await client.call_tool("get_stats", {"kind": "by-tag", **window}))
    assert "from_cache" not in after
    assert next(r for r in after["rows"] if r["tag"] == "Lesson learned")["n"] == 1


async def test_checklist_rows_follow_the_recorded_responses(client: Client, env: Env) -> None:
    window = await _window(client)
    page = await env.api.list_trades(is_copy=False, limit=3, **{"from": window["from_date"]})
    done, draft = page.items[0].trade_number, page.items[1].trade_number
    for number, status in ((done, "completed"), (draft, "draft")):
        data_of(
            await client.call_tool(
                "record_protocol_response",
                {
                    "protocol": "pre_trade",
                    "trade_number": number,
                    "status": status,
                    "answers": {
                        "Charts are loaded": True,
                        "News in the next 30 minutes?": "no",
                        "Bias": "long",
                        "Conviction": 4,
                    },
                },
            )
        )
    data = data_of(await client.call_tool("get_stats", {"kind": "by-checklist", **window}))
    rows = {r["checklist"]: r for r in data["rows"]}
    assert rows["completed"]["n"] == 1
    assert rows["draft"]["n"] == 1
    assert rows["missing"]["n"] == data["total"]["n"] - 2
    truth = await _truth(env.api, window)
    assert rows["completed"]["net_pnl"] == round(sum(r.net_pnl or 0 for r in truth[done]), 2)


async def test_account_health_for_apex(client: Client, env: Env) -> None:
    accounts = {a.account_name: a.id for a in await env.api.list_accounts()}
    balance = await env.api.balance(accounts["Apex 50K"])
    result = await client.call_tool("get_account_health", {"account": "apex 50k"})
    data = data_of(result)
    room = round(balance["max_drawdown"] - balance["drawdown"], 2)
    assert data["drawdown_room"] == room
    assert (
        f"${room:,.2f} of room before the ${balance['max_drawdown']:,.2f} drawdown limit"
        in (text_of(result).splitlines()[0])
    )
    # Today's loss: from today's trades on the account, in New York's day.
    today = datetime.fromtimestamp(env.clock.now(), NEW_YORK).date().isoformat()
    before = data["today"]["net_pnl"]
    rows = [
        r
        async for r in env.api.iter_trades(
            account_id=accounts["Apex 50K"], **{"from": today}, to=today
        )
    ]
    assert before == round(sum(r.net_pnl or 0 for r in rows), 2)
    data_of(
        await client.call_tool(
            "create_trade",
            {"account": "Apex 50K", "symbol": "MNQ", "direction": "long",
             "trade_date": "now", "net_pnl": -120.0},
        )
    )  # fmt: skip
    after = data_of(await client.call_tool("get_account_health", {"account": "Apex 50K"}))
    assert after["today"]["net_pnl"] == round(before - 120.0, 2)
    loss = max(0.0, -after["today"]["net_pnl"])
    assert after["today"]["daily_room"] == round(balance["max_daily_loss"] - loss, 2)
    assert after["rule_violations"][0]["event_type"] == "rule_violation"
    assert after["payouts"][0]["status"] == "paid"
    # An account without a balance profile says so.
    plain = data_of(await client.call_tool("get_account_health", {"account": "Personal Live"}))
    assert "no balance profile" in plain["summary"]
    assert "drawdown_room" not in plain


async def test_a_full_key_sees_every_kind(client: Client) -> None:
    stats = next(t for t in (await client.list_tools()).tools if t.name == "get_stats")
    assert "by-checklist" in stats.input_schema["properties"]["kind"]["enum"]


async def test_goals_name_each_active_goal_with_this_periods_figures(
    client: Client, env: Env
) -> None:
    result = await client.call_tool("get_goals", {})
    data = data_of(result)
    active = [g for g in await env.api.goals(status="active")]
    assert {g["name"] for g in data["goals"]} == {g["goal_name"] for g in active}
    for goal in active:
        snap = (await env.api.goal_snapshots(goal["goal_id"], limit=1))[0]
        row = next(g for g in data["goals"] if g["name"] == goal["goal_name"])
        assert row["this_period"]["target"] == snap["target"]
        assert row["this_period"].get("actual") == snap["actual"]
        assert row["this_period"]["from"] == snap["period_start"]
        assert goal["goal_name"] in text_of(result)
    everything = data_of(await client.call_tool("get_goals", {"status": "all"}))
    assert len(everything["goals"]) == len(await env.api.goals(status="all")) > len(active)


def _fewer_scopes(data: Any) -> Any:
    key = dict(data["key"])
    key["scopes"] = [
        s for s in key["scopes"] if s not in ("read:balance", "read:goals", "read:protocols")
    ]
    return {**data, "key": key}


async def test_a_key_without_the_scopes_hides_what_needs_them(env: Env) -> None:
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": READONLY_KEY},
        base_url=SANDBOX_URL,
        state_dir=env.settings.state_dir,
    )
    transport = Reshaping(SandboxTransport(env.app), ("GET", "/me", _fewer_scopes))
    server = build_server(settings, transport=transport, clock=SandboxTime(env.clock))
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "get_stats" in names
        stats = next(t for t in (await client.list_tools()).tools if t.name == "get_stats")
        kinds = stats.input_schema["properties"]["kind"]["enum"]
        assert "by-checklist" not in kinds
        assert "by-tag" in kinds
        assert "get_account_health" not in names
        assert "get_goals" not in names
        refused = await client.call_tool("get_stats", {"kind": "by-checklist"})
        assert refused.is_error
        assert "read:protocols" in text_of(refused)
        assert not (await client.call_tool("get_stats", {"kind": "by-grade"})).is_error


async def test_resources_read_health_and_goals(client: Client, env: Env) -> None:
    health = await client.read_resource("tradavity://accounts/Apex%2050K/health")
    data = json.loads(health.contents[0].text)  # type: ignore[union-attr]
    accounts = {a.account_name: a.id for a in await env.api.list_accounts()}
    balance = await env.api.balance(accounts["Apex 50K"])
    assert data["drawdown_room"] == round(balance["max_drawdown"] - balance["drawdown"], 2)
    goals = json.loads((await client.read_resource("tradavity://goals")).contents[0].text)  # type: ignore[union-attr]
    assert {g["name"] for g in goals["goals"]} == {
        g["goal_name"] for g in await env.api.goals(status="active")
    }


async def test_a_breakdown_on_the_free_tier_paces_itself(env: Env) -> None:
    """A free key (60 requests a minute) whose window another client nearly spent: the
    breakdown waits for room rather than meeting a 429, and says when it read."""
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": FREE_KEY},
        base_url=SANDBOX_URL,
        state_dir=env.settings.state_dir,
    )
    log = env.sandbox.request_log
    async with TradavityClient(
        FREE_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(env.app)
    ) as other:
        for _ in range(55):
            await other.list_trades(limit=1)
    clock = SandboxTime(env.clock)
    server = build_server(settings, transport=SandboxTransport(env.app), clock=clock)
    async with Client(server) as client:
        start, first = env.clock.now(), len(log)
        result = await client.call_tool("get_stats", {"kind": "by-tag", "range": "30d"})
        data = data_of(result)
    ours = log[first:]
    assert len(ours) > 5  # more than the window had left: it had to wait
    assert [r.status for r in ours if r.status == 429] == []
    assert env.clock.now() - start > 1  # the sandbox clock moved: it waited for room
    assert data["total"]["n"] > 0
    assert data["as_of"]
    assert "Data read at" in text_of(result)
