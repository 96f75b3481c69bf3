"""The journal form: the trader corrects the model's draft and submits it once."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ..kit import data_of, png_bytes
from .conftest import Host, World

pytestmark = pytest.mark.anyio

DRAFT: dict[str, Any] = {
    "trade": {
        "symbol": "MNQ",
        "direction": "long",
        "net_pnl": 48,
        "trade_date": "2026-11-25T10:00:00",
        "account": "Apex 50K",
        "quantity": 2,
        "emotional_state": "Rushed",
    },
    "tags": ["FOMO"],
    "checklist": {
        "protocol": "Pre-Trade Checklist",
        "answers": {
            "Charts are loaded": True,
            "News in the next 30 minutes?": "no",
            "Bias": "long",
            "Conviction": 4,
        },
    },
    "screenshot": {
        "data": base64.b64encode(png_bytes()).decode(),
        "filename": "chart.png",
        "label": "entry",
    },
}


async def on_the_day(world: World) -> list[int]:
    """The MNQ trades of the draft's day, as Tradavity has them."""
    day = {"from": "2026-11-25", "to": "2026-11-25"}
    page = await world.api.list_trades(limit=100, symbol="MNQ", **day)
    return sorted(t.trade_number for t in page.items)


async def correct_and_submit(host: Host) -> str:
    """Fix the P&L and add a tag, as the trader would, submit, and return the outcome."""
    view = host.view()
    await view.locator("#f-net_pnl").fill("52.5")
    await view.locator("#tags").fill("FOMO, Breakout")
    submit = view.get_by_test_id("submit")
    box = await submit.bounding_box()
    assert box is not None
    assert min(box["height"], box["width"]) >= 44
    await submit.click()
    outcome = view.get_by_test_id("outcome")
    await outcome.wait_for()
    return await outcome.get_attribute("data-outcome") or ""


async def test_the_form_shows_the_draft_and_writes_the_trade_exactly_once(
    host: Host, world: World
) -> None:
    before = await on_the_day(world)
    result = await host.open("review_trade", DRAFT)
    assert data_of(result)["status"] == "awaiting_user"
    assert await on_the_day(world) == before  # showing the form wrote nothing
    view = host.view()
    await view.locator("#f-symbol").wait_for()
    assert await view.locator("#f-symbol").input_value() == "MNQ"
    assert await view.locator("#f-account").input_value() == "Apex 50K"
    assert await view.locator("#tags").input_value() == "FOMO"
    checklist = view.get_by_test_id("checklist")
    assert "Pre-Trade Checklist" in await checklist.inner_text()
    assert await checklist.locator("input[data-item='Charts are loaded']").is_checked()
    assert await view.get_by_test_id("screenshot").locator("img").count() == 1
    await host.screenshot("journal-form")

    assert await correct_and_submit(host) == "done"
    after = await on_the_day(world)
    assert len(after) == len(before) + 1
    (number,) = set(after) - set(before)
    trade = data_of(await host.client.call_tool("get_trade", {"trade_number": number}))
    assert trade["net_pnl"] == 52.5
    assert {t["name"] if isinstance(t, dict) else t for t in trade["tags"]} >= {"FOMO", "Breakout"}
    await host.screenshot("journal-form-done")

    # The same form again (a host shows the stored result anew): the submit replays.
    await host.show("review_trade", DRAFT, result)
    assert await correct_and_submit(host) == "replayed"
    assert await on_the_day(world) == after
    calls = [e for e in await host.log() if e["event"] == "tools/call"]
    ids = {c["meta"]["com.tradavity/callId"] for c in calls if c["name"] == "journal_trade"}
    assert ids == {data_of(result)["call_id"]}
    assert len([c for c in calls if c["name"] == "journal_trade"]) == 2


async def test_the_fields_the_form_does_not_edit_show_their_values(host: Host) -> None:
    trade = {
        **DRAFT["trade"],
        "confidence_level": 7,
        "asset_config": {"lot_type": "mini", "pip_value": 1},
        "mistakes_made": "chased the open",
    }
    await host.open("review_trade", {**DRAFT, "trade": trade})
    view = host.view()
    more = view.locator("details")
    await more.wait_for()
    assert await more.locator("summary").inner_text() == "4 more fields, kept as given"
    await more.locator("summary").click()
    names = await more.locator("dt").all_inner_texts()
    values = await more.locator("dd").all_inner_texts()
    assert dict(zip(names, values, strict=True)) == {
        "emotional state": "Rushed",
        "confidence level": "7",
        "asset config": '{"lot_type":"mini","pip_value":1}',
        "mistakes made": "chased the open",
    }
    assert "[object" not in await view.locator("body").inner_text()
