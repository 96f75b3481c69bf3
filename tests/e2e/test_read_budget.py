"""Every read result fits the budget on a two-year journal, and says what it grouped or cut.

The sandbox seeds 730 days (about 1,800 trades on 47 symbols); one trade gets the most
fills the API allows and long notes. Every read tool and every resource (static and
templated, found through the server's own listings) is read with its largest arguments.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import DEMO_KEY, ManualClock, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.server.insights import BREAKDOWNS
from tradavity_mcp.server.read import CATALOG, LISTS, RESULT_BUDGET, TOP_ROWS, TRADE_ROWS_CAP
from tradavity_mcp.settings import Settings

from ..kit import NOW, SANDBOX_URL, data_of, text_of

pytestmark = pytest.mark.anyio

#: Each resource template with the arguments that make it largest.
TEMPLATE_READS = {
    "tradavity://stats/{kind}{?range,from_date,to_date,account}": [
        "tradavity://stats/summary?range=all",
        "tradavity://stats/by-symbol?range=all",
        "tradavity://stats/by-strategy?range=all",
        "tradavity://stats/by-symbol?from_date=2000-01-01&to_date=2030-12-31",
    ],
    "tradavity://calendar{?range,from_date,to_date,account}": [
        "tradavity://calendar?range=all",
        "tradavity://calendar?from_date=2000-01-01&to_date=2030-12-31",
        "tradavity://calendar?range=ytd",
    ],
    "tradavity://catalog/{name}": [f"tradavity://catalog/{n}" for n in CATALOG],
    "tradavity://trades/{trade_number}": ["tradavity://trades/{big}"],
    "tradavity://protocols/{protocol}": ["tradavity://protocols/1", "tradavity://protocols/2"],
    "tradavity://sync/runs{?limit}": ["tradavity://sync/runs?limit=200"],
    "tradavity://sync/recent{?limit}": ["tradavity://sync/recent?limit=200"],
    "tradavity://accounts/{name}/health": ["tradavity://accounts/Apex%2050K/health"],
}

TOOL_READS: list[tuple[str, dict[str, Any]]] = [
    ("find_trades", {"limit": 200}),
    ("find_trades", {"limit": 200, "include_archived": True, "from_date": "2000-01-01"}),
    ("get_stats", {"kind": "summary", "range": "all"}),
    ("get_stats", {"kind": "by-symbol", "range": "all"}),
    ("get_stats", {"kind": "by-strategy", "range": "all"}),
    ("get_calendar", {"range": "all"}),
    ("get_calendar", {"from_date": "2000-01-01", "to_date": "2030-12-31"}),
    ("get_calendar", {"range": "ytd"}),
    ("get_calendar", {"range": "all", "format": "image"}),
    *[("lookup", {"name": n}) for n in (*LISTS, *CATALOG)],
    ("lookup", {"name": "protocols", "query": "pre_trade"}),
    ("sync_status", {}),
    *[("get_stats", {"kind": k, "range": "all"}) for k in BREAKDOWNS],
    ("get_account_health", {"account": "Apex 50K"}),
    ("get_goals", {"status": "all"}),
]


def _sent(result: Any) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


class Journal:
    def __init__(self, app: Any, clock: ManualClock, api: TradavityClient, client: Client) -> None:
        self.app, self.clock, self.api, self.client = app, clock, api, client


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def journal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Journal]:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock, demo_days=730))
    tmp: Path = tmp_path_factory.mktemp("budget")
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=tmp / "state"
    )
    async with (
        TradavityClient(DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)) as api,
        Client(build_server(settings, transport=SandboxTransport(app))) as client,
    ):
        yield Journal(app, clock, api, client)


async def _biggest_trade(journal: Journal) -> int:
    """A trade with 200 fills and four long notes: the largest trade the API can hold."""
    number = (await journal.api.list_trades(limit=1)).items[0].trade_number
    at = "2026-01-05T15:00:00Z"
    fills = [{"price": 21000 + i / 4, "quantity": 1, "execution_time": at} for i in range(100)]
    await journal.api.set_executions(
        number, {"entries": fills, "exits": fills}, idempotency_key="budget-fills"
    )
    note = "Waited for the retest, then sized up too early. " * 400  # ~20,000 characters
    await journal.api.update_trade(
        number,
        {
            "thought_process": note,
            "mistakes_made": note,
            "learning_notes": note,
            "general_notes": note,
        },
        idempotency_key="budget-notes",
    )
    return number


async def test_no_read_result_is_over_the_budget(journal: Journal) -> None:
    client = journal.client
    big = await _biggest_trade(journal)
    journal.clock.advance(20 * 3600)  # scheduled syncs fill the log for the sync reads
    sizes: dict[str, int] = {}
    for name, args in [*TOOL_READS, ("get_trade", {"trade_number": big})]:
        result = await client.call_tool(name, args)
        assert not result.is_error, (name, args, text_of(result))
        sizes[f"{name} {json.dumps(args)}"] = _sent(result)
    await client.read_resource("tradavity://sync/status")  # the sync reads start from here
    statics = (await client.list_resources()).resources
    templates = (await client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == set(TEMPLATE_READS), "a template is not walked"
    uris = [str(r.uri) for r in statics] + [
        uri.format(big=big) for uris in TEMPLATE_READS.values() for uri in uris
    ]
    for uri in uris:
        sizes[uri] = _sent(await client.read_resource(uri))
    over = {k: v for k, v in sizes.items() if v > RESULT_BUDGET}
    assert not over, f"over {RESULT_BUDGET} characters: {over}"
    assert len(sizes) >= len(TOOL_READS) + len(statics) + 15


async def test_a_long_calendar_is_grouped_and_says_so(journal: Journal) -> None:
    data = data_of(await journal.client.call_tool("get_calendar", {"range": "all"}))
    want = await journal.api.calendar(range="all")
    assert data["grouped_by"] in {"week", "month"}
    rows = data[data["grouped_by"] + "s"]
    assert "grouped by" in data["note"]
    assert str(len(want["days"])) in data["note"]
    # The groups add up to the API's days, and to its summary.
    # Counted in decisions (the API's "trade_count"), and named so.
    assert sum(r["decisions"] for r in rows) == sum(d["trade_count"] for d in want["days"])
    assert sum(r["traded_days"] for r in rows) == len(want["days"])
    total = sum(r["net_pnl"] for r in rows)
    assert abs(total - want["summary"]["total_net_pnl"]) < 0.05
    assert data["summary"]["decisions"] == want["summary"]["total_trades"]
    # A short range is still day by day, as the API sends it.
    week = data_of(await journal.client.call_tool("get_calendar", {"range": "7d"}))
    assert "grouped_by" not in week
    assert "days" in week


async def test_by_symbol_shows_the_most_traded_and_sums_the_rest(journal: Journal) -> None:
    data = data_of(
        await journal.client.call_tool("get_stats", {"kind": "by-symbol", "range": "all"})
    )
    want = (await journal.api.stats("by-symbol", range="all"))["rows"]
    assert len(want) > TOP_ROWS + 1
    rows, rest = data["rows"][:-1], data["rows"][-1]
    assert len(rows) == TOP_ROWS
    assert rest["symbol"] == f"(the other {len(want) - TOP_ROWS})"
    assert f"of {len(want)} symbol rows" in data["note"]
    by_count = sorted(want, key=lambda r: -r["count"])
    assert {r["symbol"] for r in rows} == {r["symbol"] for r in by_count[:TOP_ROWS]}
    assert rest["count"] == sum(r["count"] for r in by_count[TOP_ROWS:])
    assert abs(rest["net_pnl"] - sum(r["net_pnl"] for r in by_count[TOP_ROWS:])) < 0.05
    assert rest["wins"] == sum(r["wins"] for r in by_count[TOP_ROWS:])


async def test_a_big_trade_page_is_capped_and_the_cursor_continues(journal: Journal) -> None:
    result = await journal.client.call_tool("find_trades", {"limit": 200})
    data = data_of(result)
    assert data["count"] == TRADE_ROWS_CAP
    assert f"the other {200 - TRADE_ROWS_CAP}" in data["note"]
    assert data["note"] in text_of(result)
    following = data_of(
        await journal.client.call_tool("find_trades", {"limit": 5, "cursor": data["next_cursor"]})
    )
    api = await journal.api.list_trades(limit=TRADE_ROWS_CAP + 5)
    want = [r.trade_number for r in api.items]
    got = [t["trade_number"] for t in data["trades"] + following["trades"]]
    assert got == want  # nothing skipped, nothing repeated


async def test_the_largest_trade_keeps_its_head_and_counts_the_rest(journal: Journal) -> None:
    big = await _biggest_trade(journal)
    data = data_of(await journal.client.call_tool("get_trade", {"trade_number": big}))
    assert data["trade_number"] == big
    assert data["left_out"]["executions"] + len(data["executions"]) == 200
    assert "left out" in data["note"]
    resource = await journal.client.read_resource(f"tradavity://trades/{big}")
    content = resource.contents[0]
    assert isinstance(content, TextResourceContents)
    assert json.loads(content.text)["left_out"] == data["left_out"]
