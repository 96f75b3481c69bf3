"""The P&L calendar view, rendered by a host on the official ext-apps bridge."""

from __future__ import annotations

import pytest

from ..kit import data_of
from .conftest import Host

pytestmark = pytest.mark.anyio


async def money(host: Host, value: float) -> str:
    """The amount as the view formats it: the host's locale, the user's currency (USD)."""
    sign = "+" if round(value, 2) > 0 else "-" if round(value, 2) < 0 else ""
    return f"{sign}${abs(value):,.2f}"


async def test_a_two_month_range_shows_both_months_and_the_total(host: Host) -> None:
    result = await host.open("get_calendar", {"from_date": "2026-10-28", "to_date": "2026-11-03"})
    data = data_of(result)
    view = host.view()
    total = view.get_by_test_id("total")
    await total.wait_for()
    labels = await view.get_by_test_id("month-label").all_inner_texts()
    assert labels == ["October 2026", "November 2026"]
    expected = data["summary"]["total_net_pnl"]
    assert await total.inner_text() == await money(host, expected)
    # Each month's total is the sum of its days in the range, and they add up.
    by_month: dict[str, float] = {}
    for row in data["days"]:
        by_month[row["date"][:7]] = by_month.get(row["date"][:7], 0.0) + row["net_pnl"]
    month_totals = await view.get_by_test_id("month-total").all_inner_texts()
    assert month_totals == [await money(host, round(v, 2)) for v in by_month.values()]
    assert round(sum(by_month.values()), 2) == expected
    # Only days of the range are filled in: Oct 27 is outside, Oct 28 traded.
    assert await view.locator("button[data-date='2026-10-27']").count() == 0
    assert await view.locator("button[data-date]").count() == len(data["days"])
    await host.screenshot("calendar-two-months")

    log = await host.log()
    events = [e["event"] for e in log]
    assert events.index("initialized") < events.index("tool-result-sent")
    assert await host.tallest() <= 500


async def test_a_click_on_a_day_lists_its_trades_through_the_host(host: Host) -> None:
    await host.open("get_calendar", {"from_date": "2026-10-28", "to_date": "2026-11-03"})
    view = host.view()
    day = view.locator("button[data-date='2026-10-28']")
    box = await day.bounding_box()
    assert box is not None
    assert min(box["height"], box["width"]) >= 44
    await day.click()
    rows = view.get_by_test_id("day-trades").locator("li")
    await rows.first.wait_for()
    listed = await rows.all_inner_texts()
    trades = data_of(
        await host.client.call_tool(
            "find_trades", {"from_date": "2026-10-28", "to_date": "2026-10-28", "limit": 50}
        )
    )["trades"]
    assert [text.split()[0] for text in listed] == [f"#{t['trade_number']}" for t in trades]
    calls = [e for e in await host.log() if e["event"] == "tools/call"]
    assert [c["name"] for c in calls] == ["lookup", "find_trades"]
    await host.screenshot("calendar-day")


async def test_counts_say_decisions_and_copies_are_marked(host: Host) -> None:
    """The calendar counts decisions (a copied trade once) and says so; the day's list
    counts trades (rows) and marks each copy."""
    copies = data_of(
        await host.client.call_tool(
            "find_trades", {"from_date": "2026-10-01", "to_date": "2026-11-20", "is_copy": True}
        )
    )["trades"]
    assert copies, "the seeded journal has copy trades"
    day = str(copies[0]["trade_date"])[:10]
    result = await host.open("get_calendar", {"from_date": day, "to_date": day})
    data = data_of(result)
    [row] = data["days"]
    assert "trade_count" not in row
    assert "total_trades" not in data["summary"]
    view = host.view()
    await view.get_by_test_id("total").wait_for()
    head = await view.locator("header").inner_text()
    decisions = data["summary"]["decisions"]
    assert f"{decisions} decision" in head
    assert " trades" not in head
    button = view.locator(f"button[data-date='{day}']")
    assert f"{row['decisions']} decision" in (await button.get_attribute("aria-label") or "")
    await button.click()
    rows = view.get_by_test_id("day-trades").locator("li")
    await rows.first.wait_for()
    trades = data_of(
        await host.client.call_tool("find_trades", {"from_date": day, "to_date": day, "limit": 50})
    )["trades"]
    # More trades listed than decisions counted: the copies, each marked.
    assert len(trades) > row["decisions"]
    listed = await rows.all_inner_texts()
    for text, trade in zip(listed, trades, strict=True):
        assert text.rstrip().endswith("copy") == bool(trade.get("is_copy")), text
    assert await view.locator("[data-mark='copy']").count() == sum(
        1 for t in trades if t.get("is_copy")
    )


@pytest.mark.parametrize("world", [330], indirect=True)
async def test_a_range_too_long_to_send_day_by_day_still_gets_every_month(host: Host) -> None:
    result = await host.open("get_calendar", {"range": "ytd"})
    data = data_of(result)
    assert data["grouped_by"] in {"week", "month"}  # the days did not fit one result
    view = host.view()
    total = view.get_by_test_id("total")
    await total.wait_for()
    labels = await view.get_by_test_id("month-label").all_inner_texts()
    assert len(labels) == int(data["range"]["to"][5:7])  # January to this month
    assert labels[0].startswith("January")
    assert await total.inner_text() == await money(host, data["summary"]["total_net_pnl"])
    month_totals = [
        float(await m.get_attribute("data-value") or "nan")
        for m in await view.get_by_test_id("month-total").all()
    ]
    assert round(sum(month_totals), 2) == pytest.approx(data["summary"]["total_net_pnl"])
    await host.screenshot("calendar-year")
