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
    ids = [c["meta"]["com.tradavity/callId"] for c in calls if c["name"] == "journal_trade"]
    # The form's id and a digest of what was sent: the same submit, the same id.
    assert len(ids) == 2
    assert ids[0] == ids[1]
    assert ids[0].startswith(data_of(result)["call_id"] + ":")


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


async def submit(host: Host) -> dict[str, Any]:
    """Press the button; the outcome the form shows, and the steps it lists."""
    view = host.view()
    earlier = view.get_by_test_id("outcome")
    if await earlier.count():  # mark the last outcome, to wait for the next one
        await earlier.evaluate("(el) => el.setAttribute('data-seen', '')")
    await view.get_by_test_id("submit").click()
    outcome = view.locator("[data-testid=outcome]:not([data-seen])")
    await outcome.wait_for()
    steps = await view.locator("ul.steps li").all_inner_texts()
    return {"outcome": await outcome.get_attribute("data-outcome"), "steps": steps}


async def test_a_correction_after_a_partial_finishes_the_same_trade(
    host: Host, world: World
) -> None:
    """The draft's unknown tag fails its part; the trader corrects the tags in the form
    and submits again: the same trade is finished (one trade in the API), its other
    parts kept, not written twice."""
    before = await on_the_day(world)
    draft = {**DRAFT, "tags": ["FOMO", "Nosuchtag"]}
    await host.open("review_trade", draft)
    view = host.view()
    await view.locator("#f-symbol").wait_for()

    first = await submit(host)
    assert first["outcome"] == "partial"
    assert any(s.startswith("tags: failed") for s in first["steps"]), first
    after = await on_the_day(world)
    assert len(after) == len(before) + 1
    (number,) = set(after) - set(before)
    # The trade exists: its fields are locked; the other parts stay open to correct.
    assert await view.locator("#f-net_pnl").is_disabled()
    assert not await view.locator("#tags").is_disabled()

    await view.locator("#tags").fill("FOMO, Breakout")
    second = await submit(host)
    assert second["outcome"] == "done", second
    assert "tags: done" in second["steps"]
    assert "screenshot: done (earlier)" in second["steps"]
    assert await on_the_day(world) == after  # the same trade, no second one
    trade = await world.api.get_trade(number)
    assert {t.get("name") for t in trade.tags} == {"FOMO", "Breakout"}
    assert len(trade.screenshots) == 1
    calls = [e for e in await host.log() if e["event"] == "tools/call"]
    ids = [c["meta"]["com.tradavity/callId"] for c in calls if c["name"] == "journal_trade"]
    assert len(set(ids)) == 2  # the correction is a call of its own


async def test_a_required_checklist_item_left_out_gets_a_field_with_its_options(
    host: Host, world: World
) -> None:
    """The model answered only the yes/no items ('*'): the form asks for Bias (its
    options) and Conviction (1-5), required; what the trader picks completes the
    checklist."""
    before = await on_the_day(world)
    draft = {**DRAFT, "checklist": {"protocol": "Pre-Trade Checklist", "answers": {"*": True}}}
    await host.open("review_trade", draft)
    view = host.view()
    bias = view.get_by_label("Bias (required)")
    await bias.wait_for()
    options = await bias.locator("option").all_inner_texts()
    assert options == ["— choose —", "long", "short", "neutral"]
    conviction = view.get_by_label("Conviction (required)")
    assert await conviction.locator("option").all_inner_texts() == ["— choose —", *"12345"]
    # Only the required items the draft leaves unanswered get a field.
    assert await view.locator("[data-missing]").count() == 2
    await bias.select_option("short")
    await conviction.select_option("4")

    done = await submit(host)
    assert done["outcome"] == "done", done
    assert "checklist: done" in done["steps"]
    (number,) = set(await on_the_day(world)) - set(before)
    (response,) = (await world.api.get_trade(number)).protocol_responses
    assert response.get("status") == "completed"
    recorded = await world.api.get_protocol_response(1, int(response["response_id"]))
    values = {int(a["item_id"]): str(a["value"]) for a in recorded["answers"]}
    assert values[3] == "short"  # Bias
    assert values[4] == "4"  # Conviction


async def test_a_screenshot_the_server_cannot_read_is_replaced_from_the_form(
    host: Host, world: World, tmp_path: Any
) -> None:
    """A path the server cannot read fails the screenshot part; a file chosen in the
    form replaces it and finishes the same trade."""
    before = await on_the_day(world)
    draft = {**DRAFT, "screenshot": {"path": str(tmp_path / "chart.png"), "label": "entry"}}
    await host.open("review_trade", draft)
    view = host.view()
    await view.locator("#shot-file").wait_for()
    first = await submit(host)
    assert first["outcome"] == "partial"
    assert any(s.startswith("screenshot: failed") for s in first["steps"])

    await view.locator("#shot-file").set_input_files(
        {"name": "chart.png", "mimeType": "image/png", "buffer": png_bytes()}
    )
    second = await submit(host)
    assert second["outcome"] == "done", second
    assert "screenshot: done" in second["steps"]
    after = await on_the_day(world)
    assert len(after) == len(before) + 1
    (number,) = set(after) - set(before)
    (shot,) = (await world.api.get_trade(number)).screenshots
    assert shot.get("label") == "entry"
