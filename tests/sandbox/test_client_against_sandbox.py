"""The API client's own operations against the sandbox: in-process and over loopback HTTP."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from tradavity_mcp.api import errors
from tradavity_mcp.api.client import RetryPolicy, TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FaultSpec,
    ManualClock,
    SandboxConfig,
    SandboxState,
    SandboxTransport,
    create_app,
    serve_in_thread,
)

from ..kit import SandboxTime

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-11-17T14:31:00Z",
    "symbol": "mgc",
    "direction": "long",
    "net_pnl": "31.5",
    "fees": 1.24,
}


@pytest.fixture(params=["in-process", "loopback"])
async def pair(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[TradavityClient, SandboxState]]:
    clock = ManualClock(1_795_000_000.0)
    app = create_app(SandboxConfig(db=":memory:", clock=clock, fault_seed=3))
    policy = RetryPolicy(base_delay=0.01, max_delay=0.05)
    # The client waits (a 429's Retry-After, the rate window) on the sandbox's clock.
    time = SandboxTime(clock)
    if request.param == "in-process":
        async with TradavityClient(
            DEMO_KEY,
            base_url="http://sandbox/api/v1",
            transport=SandboxTransport(app),
            retry=policy,
            clock=time,
        ) as api:
            yield api, app.state.sandbox
    else:
        with serve_in_thread(app) as base:
            async with TradavityClient(DEMO_KEY, base_url=base, retry=policy, clock=time) as api:
                yield api, app.state.sandbox


async def test_the_client_round_trip(pair: tuple[TradavityClient, SandboxState]) -> None:
    api, _ = pair
    me = await api.me()
    assert me.timezone == "America/New_York"
    trade = await api.create_trade(TRADE, idempotency_key="c1")
    assert (trade.symbol, trade.net_pnl, trade.fees) == ("MGC", 31.5, 1.24)
    tags = await api.list_tags()
    names = await api.set_trade_tags(trade.trade_number, [tags[0].id], idempotency_key="c2")
    assert names is not None  # the sandbox answers with the tags it set
    assert [t["name"] for t in names] == [tags[0].name]
    fills = await api.set_executions(
        trade.trade_number,
        {"entries": [{"price": 2650.1, "quantity": 1}], "exits": []},
        idempotency_key="c3",
    )
    assert fills is not None
    assert fills[0].price == 2650.1
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    shot = await api.upload_screenshot(
        trade.trade_number, png.getvalue(), "chart", label="entry", idempotency_key="c4"
    )
    assert shot.label == "entry"
    protocol = await api.get_protocol((await api.list_protocols(type="end_of_day"))[0].protocol_id)
    values = {
        str(i.item_id): ("5" if i.item_type == "rating" else "yes")
        for i in protocol.items
        if i.item_type in {"rating", "yes_no_na"}
    }
    response = await api.record_protocol_response(
        protocol.protocol_id,
        {"item_values": values, "trade_number": trade.trade_number},
        idempotency_key="c5",
    )
    assert response["status"] == "completed"
    assert (await api.get_trade(trade.trade_number)).grade is None
    rows = [r async for r in api.iter_trades(symbol="MGC")]
    assert [r.trade_number for r in rows] == [trade.trade_number]
    assert (await api.stats("summary", range="7d"))["totals"]["trade_rows"] > 0
    assert (await api.calendar(range="mtd"))["summary"]["timezone"] == "America/New_York"
    assert "calm" in await api.emotions()
    connections = await api.list_connections()
    result = await api.trigger_sync(connections[0].connection_id, idempotency_key="c6")
    assert result.connection_id == connections[0].connection_id
    with pytest.raises(errors.ConnectionSyncCooldown) as cooldown:
        await api.trigger_sync(connections[0].connection_id, idempotency_key="c7")
    assert 0 < cooldown.value.retry_after_seconds <= 20
    with pytest.raises(errors.NotFound):
        await api.get_trade(999_999)
    with pytest.raises(errors.IdempotencyConflict):
        await api.create_trade({**TRADE, "net_pnl": 1}, idempotency_key="c1")


async def test_retries_recover_from_every_fault_exactly_once(
    pair: tuple[TradavityClient, SandboxState],
) -> None:
    api, state = pair
    state.set_faults(
        FaultSpec(
            drop_after_commit=0.3,
            error_500=0.15,
            deadlock_503=0.15,
            rate_limit_429=0.1,
        )
    )
    numbers = [
        (
            await api.create_trade({**TRADE, "net_pnl": 100 + i}, idempotency_key=f"r{i}")
        ).trade_number
        for i in range(12)
    ]
    state.set_faults(None)
    assert len(set(numbers)) == 12
    rows = [r async for r in api.iter_trades(symbol="MGC")]
    assert sorted(r.trade_number for r in rows) == sorted(numbers)
    counters = state.counters
    assert counters["drop_after_commit"] + counters["error_500"] + counters["deadlock_503"] > 0


async def test_the_client_reads_every_page_of_a_long_list(
    pair: tuple[TradavityClient, SandboxState],
) -> None:
    api, state = pair
    for i in range(130):
        await api.create_tag({"category_id": 2, "name": f"Page {i:03d}"}, idempotency_key=f"t{i}")
    state.reset_counters()
    tags = await api.list_tags()
    assert len(tags) == 143
    assert len({t.id for t in tags}) == 143
    assert state.counters["requests"] == 1  # 500 a page: one request
    # Walking the sandbox's default page size instead takes three pages, rows in order.
    rows = await api.list_all("/tags", "tags", page_size=50, id_field="tag_id")
    assert [r["tag_id"] for r in rows] == [t.id for t in tags]
    assert state.counters["requests"] == 4


async def test_a_failing_broker_is_tried_twice_then_reported(
    pair: tuple[TradavityClient, SandboxState],
) -> None:
    api, state = pair
    state.set_faults(FaultSpec(broker_api_error=1.0))
    state.reset_counters()
    with pytest.raises(errors.BrokerAPIError) as info:
        await api.trigger_sync(1, idempotency_key="s1")
    syncs = [r for r in state.request_log if r.path.endswith("/sync")]
    assert [(r.status, r.error) for r in syncs] == [
        (502, "broker_api_error"),
        (429, "connection_sync_cooldown"),
    ]
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 20
