"""The stats dashboard view: the figures of get_stats, as text in the DOM."""

from __future__ import annotations

import pytest

from ..kit import data_of
from .conftest import Host

pytestmark = pytest.mark.anyio

#: How the view writes each figure of get_stats (the host's locale is en-US, the
#: sandbox user's currency USD): signed money, unsigned money, a count, a percentage.
FORMATS = """(d) => {
  const money = new Intl.NumberFormat('en-US', {style: 'currency', currency: 'USD'});
  const signed = (v) => (v > 0 ? '+' : '') + money.format(v);
  const pct = new Intl.NumberFormat('en-US', {style: 'percent', maximumFractionDigits: 2});
  const plain = new Intl.NumberFormat('en-US', {maximumFractionDigits: 2});
  const t = d.totals, c = d.decisions;
  return {
    total_net_pnl: signed(t.total_net_pnl), total_gross_pnl: signed(t.total_gross_pnl),
    total_fees: money.format(t.total_fees), trade_rows: String(t.trade_rows),
    best_trade: signed(t.best_trade), worst_trade: signed(t.worst_trade),
    avg_pnl: signed(t.avg_pnl), count: String(c.count),
    win_rate_pct: pct.format(c.win_rate_pct / 100), expectancy: signed(c.expectancy),
    profit_factor: plain.format(c.profit_factor), avg_win: signed(c.avg_win),
    avg_loss: signed(c.avg_loss),
  };
}"""


async def test_the_dashboard_shows_the_figures_of_get_stats(host: Host) -> None:
    result = await host.open("get_stats", {})
    data = data_of(result)
    view = host.view()
    await view.get_by_test_id("bars-strategy").wait_for()
    expected: dict[str, str] = await host.page.evaluate(FORMATS, data)
    shown = {key: await view.get_by_test_id(f"stat-{key}").inner_text() for key in expected}
    assert shown == expected
    assert data["totals"]["total_net_pnl"] != 0

    # The bars are the by-symbol and by-strategy rows of the same range, in order.
    span = {"from_date": data["range"]["from"], "to_date": data["range"]["to"]}
    for kind, key in (("by-symbol", "symbol"), ("by-strategy", "strategy")):
        rows = data_of(await host.client.call_tool("get_stats", {"kind": kind, **span}))["rows"]
        names = await view.get_by_test_id(f"bars-{key}").locator(".name").all_inner_texts()
        assert names == [str(r[key]) for r in rows]

    # The equity curve ends at the range's net P&L (the days of get_calendar, summed).
    days = data_of(await host.client.call_tool("get_calendar", span))
    end = view.get_by_test_id("equity-end")
    assert float(await end.get_attribute("data-value") or "nan") == pytest.approx(
        days["summary"]["total_net_pnl"]
    )
    assert await view.locator("svg polyline").count() == 1
    assert await host.tallest() <= 500
    await host.screenshot("dashboard")


async def test_figures_follow_the_hosts_locale(host: Host) -> None:
    host.context["locale"] = "de-DE"
    data = data_of(await host.open("get_stats", {}))
    net = host.view().get_by_test_id("stat-total_net_pnl")
    await net.wait_for()
    value = data["totals"]["total_net_pnl"]
    grouped = f"{abs(value):,.2f}".translate(str.maketrans(",.", ".,"))
    expected = ("+" if value > 0 else "-" if value < 0 else "") + grouped + "\u00a0$"
    assert "," in expected  # a German decimal comma: not the en-US text
    assert await net.inner_text() == expected
    rate = await host.view().get_by_test_id("stat-win_rate_pct").inner_text()
    assert rate == await host.page.evaluate(
        "(v) => new Intl.NumberFormat('de-DE', {style: 'percent', maximumFractionDigits: 2})"
        ".format(v / 100)",
        data["decisions"]["win_rate_pct"],
    )
