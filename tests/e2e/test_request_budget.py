"""API requests per fully journaled trade: a budget, not a timing, so it is a test."""

from __future__ import annotations

import pytest

from ..benchmarks.bench import breakdown_requests, requests_per_trade

pytestmark = pytest.mark.anyio


async def test_a_journaled_trade_costs_the_floor_when_warm() -> None:
    counts = await requests_per_trade()
    # Four writes: create, tags, screenshot, checklist. Nothing else once names are cached.
    assert counts["warm"] == 4
    # Cold: account, tag and protocol lists, and the protocol's items, looked up once.
    assert counts["cold"] <= 8


async def test_breakdowns_of_a_two_year_journal_stay_within_their_request_budget() -> None:
    counts = await breakdown_requests(730)
    assert counts["trades"] > 1500
    # Listing the range and each tag's trades, once; then the summary alone (unchanged).
    assert counts["first"] <= 60
    assert counts["next"] <= 5
    assert counts["largest"][1] <= counts["budget"]
