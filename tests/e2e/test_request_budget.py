"""API requests per fully journaled trade: a budget, not a timing, so it is a test."""

from __future__ import annotations

import pytest

from ..benchmarks.bench import requests_per_trade

pytestmark = pytest.mark.anyio


async def test_a_journaled_trade_costs_the_floor_when_warm() -> None:
    counts = await requests_per_trade()
    # Four writes: create, tags, screenshot, checklist. Nothing else once names are cached.
    assert counts["warm"] == 4
    # Cold: account, tag and protocol lists, and the protocol's items, looked up once.
    assert counts["cold"] <= 8
