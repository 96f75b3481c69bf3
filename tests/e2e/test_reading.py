"""Reading: resources and templates match the API, read tools, prompts, completions."""

from __future__ import annotations

import base64
import calendar
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import (
    ImageContent,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)
from PIL import Image

from tradavity_mcp.sandbox import READONLY_KEY
from tradavity_mcp.server.calendar_png import (
    CELLS,
    MAX_MONTHS,
    OUTSIDE,
    cell_box,
    day_colour,
    panel_size,
)
from tradavity_mcp.server.read import RESULT_BUDGET
from tradavity_mcp.server.tools import read as read_tools
from tradavity_mcp.server.when import readable

from ..kit import NOW, data_of, plain_trade, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    assert "null" not in content.text
    return json.loads(content.text)


async def test_stats_resources_match_the_api(client: Client, env: Env) -> None:
    for kind in ("summary", "by-symbol", "by-strategy"):
        got = await _json(client, f"tradavity://stats/{kind}?range=90d")
        want = await env.api.stats(kind, range="90d")
        assert json.dumps(got, sort_keys=True) == json.dumps(_drop_nulls(want), sort_keys=True)
    summary = await _json(client, "tradavity://stats/summary?range=90d")
    assert summary["totals"]["trade_rows"] > 50
    accounts = await env.api.list_accounts()
    by_account = await _json(
        client, f"tradavity://stats/summary?range=90d&account={accounts[0].id}"
    )
    want = await env.api.stats("summary", range="90d", account=accounts[0].id)
    assert by_account == _drop_nulls(want)


async def test_calendar_resource_and_tool_match_the_api(client: Client, env: Env) -> None:
    got = await _json(client, "tradavity://calendar?range=30d")
    api = _drop_nulls(await env.api.calendar(range="30d"))
    # The API's figures, its decision counts (which it names "trades") named decisions.
    words = {
        "trade_count": "decisions",
        "winning_trades": "winning_decisions",
        "losing_trades": "losing_decisions",
        "total_trades": "decisions",
    }
    want = {
        **api,
        "days": [{words.get(k, k): v for k, v in day.items()} for day in api["days"]],
        "summary": {words.get(k, k): v for k, v in api["summary"].items()},
    }
    assert api["days"]
    assert got == want
    assert data_of(await client.call_tool("get_calendar", {"range": "30d"})) == want
    assert want["summary"]["timezone"]


async def test_catalog_and_reference_lists(client: Client, env: Env) -> None:
    for name in (
        "me",
        "usage",
        "brokers",
        "instruments",
        "prop-firm-presets",
        "scopes",
        "emotions",
    ):
        data = await _json(client, f"tradavity://catalog/{name}")
        assert data, name
    accounts = await _json(client, "tradavity://accounts")
    assert {a["name"] for a in accounts} == {a.account_name for a in await env.api.list_accounts()}
    tags = await _json(client, "tradavity://tags")
    assert all("category" in t for t in tags)
    strategies = await _json(client, "tradavity://strategies")
    assert any(s["setups"] for s in strategies)
    protocols = await _json(client, "tradavity://protocols")
    one = await _json(client, f"tradavity://protocols/{protocols[0]['id']}")
    assert one["items"]
    trade = await _json(client, "tradavity://trades/1")
    assert trade["trade_number"] == 1
    missing = await client.call_tool("get_trade", {"trade_number": 999999})
    assert missing.is_error


async def test_every_resource_has_a_description(client: Client) -> None:
    resources = (await client.list_resources()).resources
    templates = (await client.list_resource_templates()).resource_templates
    assert len(resources) >= 5
    assert len(templates) >= 7
    described = [(r.name, r.description) for r in resources]
    described += [(t.name, t.description) for t in templates]
    for name, description in described:
        assert description, name
        assert len(description) >= 15, name


async def test_an_archived_trade_is_shown_marked_archived(client: Client, env: Env) -> None:
    page = await env.api.list_trades(limit=3)
    row = page.items[2]
    await env.api.archive_trade(row.trade_number, idempotency_key="archive-for-read")
    result = await client.call_tool("get_trade", {"trade_number": row.trade_number})
    data = data_of(result)
    assert data["archived"] is True
    assert data["trade_number"] == row.trade_number
    assert data["symbol"] == row.symbol
    assert data["net_pnl"] == row.net_pnl
    assert "archived" in data["note"]
    assert "archived" in text_of(result)
    via_resource = await _json(client, f"tradavity://trades/{row.trade_number}")
    # The resource reads as the tool's text: each time in the user's zone alone.
    assert via_resource == readable(data) == json.loads(text_of(result))
    assert "trade_date" not in via_resource
    assert via_resource["trade_date_local"] == data["trade_date_local"]
    # A trade that never existed is still not found.
    missing = await client.call_tool("get_trade", {"trade_number": 999999})
    assert missing.is_error
    assert "#999999 was not found" in text_of(missing)


async def test_read_tools(client: Client, env: Env) -> None:
    page = data_of(await client.call_tool("find_trades", {"limit": 5}))
    assert page["count"] == 5
    assert "next_cursor" in page
    following = data_of(
        await client.call_tool("find_trades", {"limit": 5, "cursor": page["next_cursor"]})
    )
    first_numbers = {t["trade_number"] for t in page["trades"]}
    assert first_numbers.isdisjoint(t["trade_number"] for t in following["trades"])
    row = page["trades"][0]
    assert isinstance(row.get("account"), str | None)
    symbol = row["symbol"]
    by_symbol = data_of(
        await client.call_tool("find_trades", {"symbol": symbol.lower(), "limit": 50})
    )
    assert {t["symbol"] for t in by_symbol["trades"]} == {symbol}
    losers = data_of(await client.call_tool("find_trades", {"outcome": "loss", "limit": 50}))
    assert all(t["net_pnl"] < 0 for t in losers["trades"])
    full = data_of(await client.call_tool("get_trade", {"trade_number": row["trade_number"]}))
    assert full["trade_number"] == row["trade_number"]
    stats = data_of(await client.call_tool("get_stats", {"kind": "by-symbol", "range": "90d"}))
    assert stats
    bad = await client.call_tool("get_stats", {"range": "forever"})
    assert bad.is_error
    assert "range" in text_of(bad)
    me = data_of(await client.call_tool("lookup", {"name": "me"}))
    assert me


async def test_calendar_image_cells_match_the_data(client: Client, env: Env) -> None:
    data = data_of(await client.call_tool("get_calendar", {"range": "mtd"}))
    result = await client.call_tool("get_calendar", {"range": "mtd", "format": "image"})
    image_block = next(c for c in result.content if isinstance(c, ImageContent))
    assert image_block.mime_type == "image/png"
    png = base64.b64decode(image_block.data)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    days = {date.fromisoformat(d["date"]): float(d["net_pnl"]) for d in data["days"]}
    first = date.fromisoformat(data["range"]["from"])
    last = date.fromisoformat(data["range"]["to"])
    scale = max((abs(v) for v in days.values()), default=0.0)
    for day in range(1, calendar.monthrange(first.year, first.month)[1] + 1):
        left, top, right, bottom = cell_box(first.year, first.month, day)
        x, y = (left + right) // 2 + 20, (top + bottom) // 2 - 8
        pixel = image.getpixel((x, y))
        assert isinstance(pixel, tuple)
        when = date(first.year, first.month, day)
        # Days after the range (the rest of this month) are left blank, not "no trades".
        expected = day_colour(days.get(when), scale) if when <= last else OUTSIDE
        assert pixel[:3] == expected, day
    text = next(c for c in result.content if isinstance(c, TextContent)).text
    assert first.strftime("%B %Y") in text


async def test_calendar_image_shows_every_month_of_the_range(client: Client) -> None:
    """Oct 28 - Nov 3: both months drawn, each with its own total, and the same total
    as the data (the picture used to draw only the last month)."""
    args = {"from_date": "2026-10-28", "to_date": "2026-11-03"}
    data = data_of(await client.call_tool("get_calendar", args))
    result = await client.call_tool("get_calendar", {**args, "format": "image"})
    shown = data_of(result)
    assert [m["month"] for m in shown["months"]] == ["2026-10", "2026-11"]
    by_month: dict[str, float] = {}
    for d in data["days"]:
        by_month[d["date"][:7]] = by_month.get(d["date"][:7], 0.0) + float(d["net_pnl"])
    assert {m["month"]: m["net_pnl"] for m in shown["months"]} == {
        k: round(v, 2) for k, v in by_month.items()
    } | {m: 0.0 for m in ("2026-10", "2026-11") if m not in by_month}
    assert shown["net_pnl"] == round(sum(by_month.values()), 2)
    text = next(c for c in result.content if isinstance(c, TextContent)).text
    assert "October 2026" in text
    assert "November 2026" in text
    png = base64.b64decode(next(c for c in result.content if isinstance(c, ImageContent)).data)
    width, height = Image.open(io.BytesIO(png)).size
    assert height > width  # two month panels, one above the other


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _month_end(index: int) -> date:
    return _month_start(index + 1) - timedelta(days=1)


def _cell_of(width: int, columns: int) -> int:
    """The cell size a picture of `columns` month panels was drawn at."""
    return next(cell for cell, _ in CELLS if panel_size(cell)[0] * columns == width)


def _check_panels(png: bytes, months: list[date], days: dict[date, float]) -> int:
    """Every day of every month panel has the colour of its P&L (on the scale of `days`);
    the picture is exactly as large as its panels. Returns the cell size."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    columns = 4
    cell = _cell_of(image.width, columns)
    panel_w, panel_h = panel_size(cell)
    assert image.size == (columns * panel_w, -(-len(months) // columns) * panel_h)
    scale = max((abs(v) for v in days.values()), default=0.0)
    for i, first in enumerate(months):
        origin = ((i % columns) * panel_w, (i // columns) * panel_h)
        for day in range(1, calendar.monthrange(first.year, first.month)[1] + 1):
            left, top, right, bottom = cell_box(
                first.year, first.month, day, cell=cell, origin=origin
            )
            pixel = image.getpixel(((left + right) // 2, (top + bottom) // 2))
            assert isinstance(pixel, tuple)
            when = first.replace(day=day)
            assert pixel[:3] == day_colour(days.get(when), scale), when
    return cell


async def test_calendar_image_of_36_months_draws_every_month(env: Env) -> None:
    """The bound itself: 36 months, every day of each drawn in its colour, every month
    in the words, nothing said to be left out."""
    today = date.fromtimestamp(NOW)
    end = today.year * 12 + today.month - 1
    first, last = _month_start(end - MAX_MONTHS + 1), _month_end(end)
    args = {"from_date": first.isoformat(), "to_date": last.isoformat()}
    api_days = (await env.api.calendar(**{"from": args["from_date"], "to": args["to_date"]}))[
        "days"
    ]
    days = {date.fromisoformat(d["date"]): float(d["net_pnl"]) for d in api_days}
    async with Client(env.server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("get_calendar", {**args, "format": "image"})
    assert f"at most {MAX_MONTHS} months drawn" in str(tools["get_calendar"].description)
    shown = data_of(result)
    months = [_month_start(i) for i in range(end - MAX_MONTHS + 1, end + 1)]
    assert [m["month"] for m in shown["months"]] == [f"{m:%Y-%m}" for m in months]
    assert "not_drawn" not in shown
    assert shown["net_pnl"] == round(sum(days.values()), 2)
    text = text_of(result)
    assert all(f"{m:%B %Y} net " in text for m in months)
    assert "at most" not in text
    png = base64.b64decode(next(c for c in result.content if isinstance(c, ImageContent)).data)
    assert _check_panels(png, months, days) == 18
    assert len(result.model_dump_json(by_alias=True, exclude_none=True)) <= RESULT_BUDGET


async def test_calendar_image_past_36_months_says_what_it_drew(env: Env) -> None:
    """2000 to this year: the 36 latest months with trades are drawn, and the words say
    so and sum every earlier year, old trades included, to the range's total."""
    today = date.fromtimestamp(NOW)
    args = {"from_date": "2000-01-01", "to_date": f"{today.year}-12-31"}
    async with Client(env.server()) as client:
        for when, pnl in (("2001-03-05T10:00", 100.25), ("2010-02-02T10:00", -40.0)):
            made = await client.call_tool("create_trade", {**plain_trade(pnl), "trade_date": when})
            assert not made.is_error, text_of(made)
        result = await client.call_tool("get_calendar", {**args, "format": "image"})
    api = await env.api.calendar(**{"from": args["from_date"], "to": args["to_date"]})
    days = {date.fromisoformat(d["date"]): float(d["net_pnl"]) for d in api["days"]}
    latest = max(days)
    end = latest.year * 12 + latest.month - 1
    months = [_month_start(i) for i in range(end - MAX_MONTHS + 1, end + 1)]
    shown = data_of(result)
    assert shown["drawn"] == {"from": months[0].isoformat(), "to": _month_end(end).isoformat()}
    assert [m["month"] for m in shown["months"]] == [f"{m:%Y-%m}" for m in months]
    rest = shown["not_drawn"]
    assert rest[0]["from"] == "2000-01-01"
    assert {"from": "2001-01-01", "to": "2001-12-31", "net_pnl": 100.25, "traded_days": 1} in rest
    assert {"from": "2010-01-01", "to": "2010-12-31", "net_pnl": -40.0, "traded_days": 1} in rest
    # The words and the numbers cover the whole range once: drawn months + the rest.
    assert shown["net_pnl"] == round(sum(days.values()), 2)
    summed = sum(m["net_pnl"] for m in shown["months"]) + sum(p["net_pnl"] for p in rest)
    assert round(summed, 2) == shown["net_pnl"]
    assert sum(p["traded_days"] for p in rest) == sum(1 for d in days if d < months[0])
    text = text_of(result)
    assert f"at most {MAX_MONTHS} months" in text
    assert f"it shows {months[0]:%b %-d, %Y} - {_month_end(end):%b %-d, %Y}" in text
    assert "Jan 1, 2001 - Dec 31, 2001: net +100.25 on 1 traded day;" in text
    assert "Jan 1, 2002 - Dec 31, 2009: no trades" in text
    png = base64.b64decode(next(c for c in result.content if isinstance(c, ImageContent)).data)
    drawn_days = {d: v for d, v in days.items() if d >= months[0]}
    _check_panels(png, months, drawn_days)
    assert len(result.model_dump_json(by_alias=True, exclude_none=True)) <= RESULT_BUDGET


async def test_calendar_image_past_its_time_is_refused_in_words(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_tools, "PICTURE_SECONDS", 0)
    async with Client(env.server()) as client:
        result = await client.call_tool("get_calendar", {"range": "ytd", "format": "image"})
    assert result.is_error
    assert "The calendar picture was stopped: it took longer than 0 s" in text_of(result)
    assert "format json" in text_of(result)


async def test_prompts_render_with_arguments(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {"journal_voice_note", "end_of_day_review", "weekly_review", "pre_trade_check"} <= set(
        prompts
    )
    voice = await client.get_prompt(
        "journal_voice_note", {"transcript": "long 2 MNQ, out +48, tag FOMO"}
    )
    text = voice.messages[0].content
    assert isinstance(text, TextContent)
    assert "long 2 MNQ, out +48, tag FOMO" in text.text
    assert "journal_trade" in text.text
    check = await client.get_prompt("pre_trade_check", {"symbol": "es", "direction": "short"})
    assert isinstance(check.messages[0].content, TextContent)
    assert "trade ES (direction: short)" in check.messages[0].content.text
    for name, args in [
        ("end_of_day_review", {"date": "2026-11-20"}),
        ("weekly_review", {"range": "mtd", "account": "Main"}),
    ]:
        rendered = await client.get_prompt(name, args)
        assert rendered.messages


async def test_completions(client: Client, env: Env) -> None:
    accounts = [a.account_name for a in await env.api.list_accounts() if not a.is_archived]
    prefix = accounts[0][:2]
    got = await client.complete(
        PromptReference(type="ref/prompt", name="weekly_review"),
        {"name": "account", "value": prefix},
    )
    assert accounts[0] in got.completion.values
    assert all(
        v.casefold().startswith(prefix.casefold()) or prefix.casefold() in v.casefold()
        for v in got.completion.values
    )
    ranges = await client.complete(
        ResourceTemplateReference(
            type="ref/resource", uri="tradavity://calendar{?range,from_date,to_date,account}"
        ),
        {"name": "range", "value": "m"},
    )
    assert ranges.completion.values == ["mtd"]
    symbols = await client.complete(
        PromptReference(type="ref/prompt", name="pre_trade_check"),
        {"name": "symbol", "value": "MN"},
    )
    assert "MNQ" in symbols.completion.values
    kinds = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri="tradavity://catalog/{name}"),
        {"name": "name", "value": "pr"},
    )
    assert kinds.completion.values == ["prop-firm-presets"]


async def test_read_only_key_lists_no_write_tools(env: Env) -> None:
    from tradavity_mcp.settings import Settings

    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": READONLY_KEY}, state_dir=env.settings.state_dir
    )
    from tradavity_mcp.sandbox import SandboxTransport
    from tradavity_mcp.server import build_server

    server = build_server(settings, transport=SandboxTransport(env.app))
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "find_trades" in names
        assert "create_trade" not in names
        refused = await client.call_tool(
            "create_trade",
            {"symbol": "ES", "direction": "long", "net_pnl": 1, "trade_date": "now"},
        )
        assert refused.is_error
        assert "write:trades" in text_of(refused)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
