"""Every text in the trader's clock (#24): a trade journaled at 09:42 reads 09:42, with its
zone, in every text a person or model reads; "today" is the trader's local day; a trade
dated in the future is refused before anything is sent.

Two traders, each at a moment when the UTC date is not theirs: Dana in New York at 19:40
on Monday 2026-12-07 (UTC: Tuesday already), Priya in Singapore at 07:40 on Tuesday
2026-12-08 (UTC: still Monday).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent, TextResourceContents

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SECOND_PRO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_http_app, build_server
from tradavity_mcp.server.writes.ledger import Ledger
from tradavity_mcp.settings import Settings

from ..kit import SANDBOX_URL, SandboxTime, data_of, http_transport, meta, sandbox_writes, text_of

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "snapshots"


@dataclass(frozen=True)
class Trader:
    name: str
    key: str
    #: The sandbox's clock, in UTC.
    at: str
    #: How the trader's zone is marked in texts.
    zone: str
    today: str
    yesterday: str
    #: A moment of each of the trader's days, which UTC would put on another day.
    today_trade: str
    yesterday_trade: str
    #: The 09:42 trade, and its hour in UTC (which no text may show).
    trade_0942: str
    utc_hour: str
    #: The trader's time now, and its hour in UTC.
    now: str
    utc_now: str


NEW_YORK = Trader(
    name="new_york",
    key=DEMO_KEY,
    at="2026-12-08T00:40:00+00:00",
    zone="EST",
    today="2026-12-07",
    yesterday="2026-12-06",
    today_trade="2026-12-07T09:31",  # 14:31 UTC
    yesterday_trade="2026-12-06T19:22",  # 00:22 UTC on 2026-12-07, the trader's today
    trade_0942="2026-12-07T09:42",
    utc_hour="14:42",
    now="2026-12-07 19:40 EST",
    utc_now="00:40",
)
SINGAPORE = Trader(
    name="singapore",
    key=SECOND_PRO_KEY,
    at="2026-12-07T23:40:00+00:00",
    zone="+08:00",
    today="2026-12-08",
    yesterday="2026-12-07",
    today_trade="2026-12-08T07:05",  # 23:05 UTC on 2026-12-07, the trader's yesterday
    yesterday_trade="2026-12-07T09:42",
    trade_0942="2026-12-07T09:42",  # 01:42 UTC
    utc_hour="01:42",
    now="2026-12-08 07:40 +08:00",
    utc_now="23:40",
)
TRADERS = pytest.mark.parametrize("trader", [NEW_YORK, SINGAPORE], ids=lambda t: t.name)


@dataclass
class World:
    trader: Trader
    app: Any
    clock: ManualClock
    client: Client
    settings: Settings
    api: TradavityClient
    account: str

    async def call(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
        return await self.client.call_tool(tool, arguments, **kwargs)

    def trade(self, when: str, pnl: float, symbol: str = "M2K") -> dict[str, Any]:
        return {
            "symbol": symbol,
            "direction": "long",
            "net_pnl": pnl,
            "trade_date": when,
            "account": self.account,
        }

    async def trade_count(self) -> int:
        return sum([1 async for _ in self.api.iter_trades(include_archived="true", limit=200)])


@asynccontextmanager
async def world(trader: Trader, tmp_path: Path, *, http: bool = False) -> AsyncIterator[World]:
    """The trader's sandbox at `trader.at`, our server on it (on the same clock), and a
    real MCP client: in memory, or over streamable HTTP on loopback."""
    clock = ManualClock(datetime.fromisoformat(trader.at).timestamp())
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": trader.key},
        base_url=SANDBOX_URL,
        state_dir=tmp_path / "state",
    )
    async with TradavityClient(
        trader.key, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        account = next(a.account_name for a in await api.list_accounts() if not a.is_archived)
        server = build_server(
            settings, transport=SandboxTransport(app), clock=SandboxTime(clock), stdio=not http
        )
        if not http:
            async with Client(server) as client:
                yield World(trader, app, clock, client, settings, api, account)
            return
        served = build_http_app(server, kind="http", host="127.0.0.1")
        with serve_in_thread(served, path="", lifespan=True) as base:
            async with Client(http_transport(base, "unused-without-auth")) as client:
                yield World(trader, app, clock, client, settings, api, account)


def _no_utc(text: str, trader: Trader) -> None:
    """Nothing a person reads shows the UTC hour or a bare UTC timestamp."""
    assert trader.utc_hour not in text, text
    assert not re.search(r"\d{2}:\d{2}(:\d{2})?Z", text), text


async def _resource(client: Client, uri: str) -> str:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


# --- a 09:42 trade reads 09:42 ---------------------------------------------------------


@TRADERS
@pytest.mark.parametrize("http", [False, True], ids=["memory", "http"])
async def test_a_0942_trade_reads_0942_in_every_text(
    trader: Trader, http: bool, tmp_path: Path
) -> None:
    local = f"{trader.trade_0942[:10]} 09:42 {trader.zone}"
    async with world(trader, tmp_path, http=http) as w:
        journaled = await w.call(
            "journal_trade", {"trade": w.trade(trader.trade_0942, 48.5), "tags": ["Breakout"]}
        )
        data = data_of(journaled)
        number = data["trade_number"]
        assert f"Trade #{number} M2K long +48.50 on {local} ({w.account})." in text_of(journaled)
        # Structured content keeps Tradavity's UTC time, named as such, beside the local one.
        assert data["trade_date_local"] == local
        assert data["trade_date"] == f"{trader.trade_0942[:10]}T{trader.utc_hour}:00Z"
        found = await w.call(
            "find_trades",
            {
                "from_date": trader.trade_0942[:10],
                "to_date": trader.trade_0942[:10],
                "symbol": "M2K",
            },
        )
        assert f"#{number} {local} M2K long +48.50 {w.account} Breakout" in text_of(found)
        assert data_of(found)["trades"][0]["trade_date_local"] == local
        got = await w.call("get_trade", {"trade_number": number})
        assert json.loads(text_of(got))["trade_date_local"] == local
        assert data_of(got)["trade_date_local"] == local
        resource = await _resource(w.client, f"tradavity://trades/{number}")
        assert json.loads(resource)["trade_date_local"] == local
        # The same call again: held back, and the notice names the first call's time, local.
        again = await w.call(
            "journal_trade", {"trade": w.trade(trader.trade_0942, 48.5), "tags": ["Breakout"]}
        )
        assert data_of(again)["outcome"] == "suspected_duplicate"
        assert f"An identical call at {trader.now} already wrote this trade" in text_of(again)
        for text in (text_of(journaled), text_of(found), text_of(got), resource, text_of(again)):
            _no_utc(text, trader)
        assert trader.utc_now not in text_of(again)


@TRADERS
async def test_now_is_written_as_the_traders_time(trader: Trader, tmp_path: Path) -> None:
    async with world(trader, tmp_path) as w:
        result = await w.call("create_trade", w.trade("now", -12.0))
        assert f"on {trader.now} ({w.account})" in text_of(result)
        assert "on now" not in text_of(result)
        _no_utc(text_of(result), trader)


@TRADERS
async def test_a_fills_time_without_an_offset_is_the_traders_as_a_trades_is(
    trader: Trader, tmp_path: Path
) -> None:
    """ "Filled at 09:42" is 09:42 where the trader is, for a fill as for the trade."""
    async with world(trader, tmp_path) as w:
        journaled = await w.call(
            "journal_trade",
            {
                "trade": w.trade(trader.trade_0942, 20.0),
                "executions": {
                    "entries": [{"price": 2100.25, "quantity": 1,
                                 "execution_time": trader.trade_0942}],
                    "exits": [{"price": 2110.25, "quantity": 1}],
                },
            },
        )  # fmt: skip
        data = data_of(journaled)
        assert data["steps"]["executions"] == "done", data
        fills = await w.api.list_executions(data["trade_number"])
    entry = next(f for f in fills if f.price == 2100.25)
    assert str(entry.model_dump(mode="json")["execution_time"]).startswith(
        f"{trader.trade_0942[:10]}T{trader.utc_hour}"
    )


# --- the trader's today ----------------------------------------------------------------


@TRADERS
async def test_today_and_yesterday_are_the_traders_days(trader: Trader, tmp_path: Path) -> None:
    async with world(trader, tmp_path) as w:
        today = data_of(await w.call("create_trade", w.trade(trader.today_trade, 31.0)))
        yesterday = data_of(await w.call("create_trade", w.trade(trader.yesterday_trade, 22.0)))
        for name, day, mine, other in (
            ("today", trader.today, today, yesterday),
            ("yesterday", trader.yesterday, yesterday, today),
        ):
            result = await w.call("find_trades", {"range": name, "limit": 200})
            page = data_of(result)
            numbers = {t["trade_number"] for t in page["trades"]}
            assert mine["trade_number"] in numbers, name
            assert other["trade_number"] not in numbers, name
            # Every row is of that local day, and the result says which day it covers.
            assert {t["trade_date_local"][:10] for t in page["trades"]} == {day}
            assert page["range"] == {"range": name, "from": day, "to": day}
            assert text_of(result).startswith(f"Trades on {day} ({name}), the user's days in ")
            _no_utc(text_of(result), trader)
        # Dates are the trader's days too, and a range and dates are not mixed.
        by_dates = data_of(
            await w.call("find_trades", {"from_date": trader.today, "to_date": trader.today})
        )
        assert today["trade_number"] in {t["trade_number"] for t in by_dates["trades"]}
        both = await w.call("find_trades", {"range": "today", "from_date": trader.today})
        assert both.is_error
        assert "either range ('today') or from_date/to_date, not both" in text_of(both)


@TRADERS
async def test_lookup_me_gives_the_traders_date_and_time(trader: Trader, tmp_path: Path) -> None:
    async with world(trader, tmp_path) as w:
        me = await w.call("lookup", {"name": "me"})
        now = data_of(me)["local_now"]
        assert now["date"] == trader.today
        assert f"{now['date']} {now['time']} {now['zone']}" == trader.now
        assert now["weekday"] == datetime.fromisoformat(trader.today).strftime("%A")
        assert now["timezone"] == json.loads(text_of(me))["preferences"]["timezone"]


async def test_get_stats_covers_30_days_and_a_reversed_range_is_refused(tmp_path: Path) -> None:
    async with world(NEW_YORK, tmp_path) as w:
        stats = data_of(await w.call("get_stats", {}))
        # 30 days: the trader's today (not the UTC one) and the 29 before it.
        assert stats["range"] == {"from": "2026-11-08", "to": NEW_YORK.today, "range": "30d"}
        before = len(w.app.state.sandbox.request_log)
        for tool in ("find_trades", "get_stats", "get_calendar"):
            reversed_ = await w.call(tool, {"from_date": "2026-12-07", "to_date": "2026-12-01"})
            assert reversed_.is_error, tool
            assert "from_date 2026-12-07 is after to_date 2026-12-01" in text_of(reversed_)
        # Refused here, not sent as a question the API would answer with zeros.
        assert not [r for r in w.app.state.sandbox.request_log[before:] if "/me" not in r.path]


# --- a trade in the future -------------------------------------------------------------


@TRADERS
async def test_a_trade_dated_tomorrow_is_refused_and_nothing_is_sent(
    trader: Trader, tmp_path: Path
) -> None:
    tomorrow = datetime.fromisoformat(trader.today).toordinal() + 1
    at_0931 = f"{datetime.fromordinal(tomorrow).date().isoformat()}T09:31"
    async with world(trader, tmp_path) as w:
        existing = data_of(await w.call("create_trade", w.trade(trader.yesterday_trade, 5.0)))
        writes, trades = sandbox_writes(w.app), await w.trade_count()
        calls = {
            "create_trade": w.trade(at_0931, 48.0),
            "journal_trade": {"trade": w.trade(at_0931, 48.0), "tags": ["Breakout"]},
        }
        for tool, arguments in calls.items():
            result = await w.call(tool, arguments, meta=meta({"callId": f"future-{tool}"}))
            assert result.is_error, tool
            text = text_of(result)
            assert f"trade_date '{at_0931}' is in the future" in text
            # Both times, the trader's.
            assert f"that is {at_0931[:10]} 09:31 {trader.zone}" in text
            assert f"it is now {trader.now} for the user" in text
            assert "Nothing was written." in text
        # A journaled trade's date is not changed at all (#25): archive, journal anew.
        moved = await w.call(
            "update_trade",
            {"trade_number": existing["trade_number"], "changes": {"trade_date": at_0931}},
            meta=meta({"callId": "future-update_trade"}),
        )
        assert moved.is_error
        assert "changes.trade_date cannot be changed once a trade is journaled: archive this " in (
            text_of(moved)
        )
        # Nothing reached the API, and the ledger keeps nothing: not even a pending call.
        assert sandbox_writes(w.app) == writes
        assert await w.trade_count() == trades
    ledger = Ledger(w.settings.ledger_path)
    try:
        assert ledger.pending_calls() == []
        for tool in calls:
            assert ledger.get_call(w.api.principal, tool, f"future-{tool}") is None
    finally:
        ledger.close()


async def test_the_likely_day_is_named_on_an_evening_in_the_americas(tmp_path: Path) -> None:
    """19:40 in New York is already tomorrow in UTC: a model that took its date from UTC
    journals "today at 9:31" on tomorrow. The refusal names the day meant."""
    async with world(NEW_YORK, tmp_path) as w:
        result = await w.call("create_trade", w.trade("2026-12-08T09:31", 48.0))
        text = text_of(result)
        assert "Did you mean 2026-12-07 09:31 EST (today)?" in text
        assert "The user's today is Monday 2026-12-07 (America/New_York)" in text
        assert "the UTC date is already 2026-12-08" in text
        # An explicit UTC time is the same moment, refused the same way.
        utc = text_of(await w.call("create_trade", w.trade("2026-12-08T14:31Z", 48.0)))
        assert "that is 2026-12-08 09:31 EST" in utc
        assert "Did you mean 2026-12-07 09:31 EST (today)?" in utc
        # Later today is the future too, with no day to suggest; a clock a few minutes
        # ahead of ours is not.
        later = text_of(await w.call("create_trade", w.trade("2026-12-07T21:00", 48.0)))
        assert "is in the future: that is 2026-12-07 21:00 EST" in later
        assert "Did you mean" not in later
        skewed = await w.call("create_trade", w.trade("2026-12-07T19:43", 48.0))
        assert data_of(skewed)["trade_date_local"] == "2026-12-07 19:43 EST"


# --- the texts the model reads ---------------------------------------------------------


def _normalized(text: str, numbers: dict[int, str]) -> str:
    """Trade numbers and other ids depend on the seeded journal, not on the clock."""
    for number, name in sorted(numbers.items(), key=lambda item: -item[0]):
        text = re.sub(rf"#{number}\b", f"#{name}", text)
        text = re.sub(rf'"trade_number":{number}\b', f'"trade_number":"{name}"', text)
    return re.sub(r'"(\w+_id|id)":\d+', r'"\1":ID', text)


@TRADERS
async def test_the_texts_the_model_reads(trader: Trader, tmp_path: Path) -> None:
    """A snapshot of each text, in the trader's zone (UPDATE_SNAPSHOTS=1 rewrites it)."""
    parts: list[tuple[str, str]] = []
    numbers: dict[int, str] = {}
    async with world(trader, tmp_path) as w:

        async def show(title: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result = await w.call(tool, arguments)
            parts.append((f"{tool} {title}".strip(), text_of(result)))
            return dict(result.structured_content or {})

        first = await show(
            "09:42",
            "journal_trade",
            {"trade": w.trade(trader.trade_0942, 48.5), "tags": ["Breakout"]},
        )
        numbers[first["trade_number"]] = "A"
        second = await show("today", "create_trade", w.trade(trader.today_trade, -20.25))
        numbers[second["trade_number"]] = "B"
        await show("again (duplicate)", "create_trade", w.trade(trader.today_trade, -20.25))
        await show("today", "find_trades", {"range": "today", "symbol": "M2K"})
        await show("yesterday", "find_trades", {"range": "yesterday", "symbol": "M2K"})
        await show("A", "get_trade", {"trade_number": first["trade_number"]})
        await show(
            "grade A",
            "update_trade",
            {"trade_number": first["trade_number"], "changes": {"trade_quality_grade": "A"}},
        )
        tomorrow = datetime.fromordinal(datetime.fromisoformat(trader.today).toordinal() + 1)
        await show("tomorrow", "create_trade", w.trade(f"{tomorrow:%Y-%m-%d}T09:31", 1.0))
        await show("", "sync_status", {})
        me = json.loads(text_of(await w.call("lookup", {"name": "me"})))
        parts.append(("lookup me (local_now)", json.dumps(me["local_now"], indent=1)))
        prompt = await w.client.get_prompt("end_of_day_review", {})
        content = prompt.messages[0].content
        assert isinstance(content, TextContent)
        parts.append(("prompt end_of_day_review", content.text.split("\n\n")[0]))
    for _, text in parts:
        _no_utc(text, trader)
    snapshot = "".join(f"## {title}\n{_normalized(text, numbers)}\n\n" for title, text in parts)
    path = SNAPSHOTS / f"clock_{trader.name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(snapshot, "utf-8")
    assert path.exists(), f"no snapshot: run UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert snapshot == path.read_text("utf-8"), (
        "the texts changed: review the diff, then UPDATE_SNAPSHOTS=1 to accept it"
    )


@TRADERS
async def test_sync_texts_are_in_the_traders_clock(trader: Trader, tmp_path: Path) -> None:
    async with world(trader, tmp_path) as w:
        w.clock.advance(3600)  # an hour of scheduled syncs
        status = await w.call("sync_status", {})
        assert re.search(
            rf"next scheduled sync {trader.today} \d\d:\d\d {re.escape(trader.zone)}\)",
            text_of(status),
        )
        connections = data_of(status)["connections"]
        assert all(c["next_scheduled_sync_at"].endswith("Z") for c in connections)
        assert all(c["next_scheduled_sync_at_local"].endswith(trader.zone) for c in connections)
        for uri in ("tradavity://sync/status", "tradavity://sync/runs", "tradavity://sync/recent"):
            text = await _resource(w.client, uri)
            assert "_local" in text, uri
            assert not re.search(r"\d{2}:\d{2}(:\d{2})?Z", text), uri
