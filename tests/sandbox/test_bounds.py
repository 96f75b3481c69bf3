"""Documented bounds, enums and input quirks, one request each, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tradavity_mcp.sandbox import DEMO_KEY, SECOND_PRO_KEY

from .conftest import Live

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-11-17T14:31:00Z",
    "symbol": "NQ",
    "direction": "long",
    "net_pnl": 10,
}
_n = iter(range(10_000))


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"b{next(_n)}"}


REJECTED: list[tuple[str, Any]] = [
    ("symbol", ""),
    ("symbol", "X" * 51),
    ("net_pnl", 1e18),
    ("net_pnl", "ten"),
    ("quantity", -1),
    ("quantity", 10_000_000_000),
    ("multiplier", 100_000_000),
    ("sl_price", 0),
    ("tp_price", -5),
    ("sl_price", 0.000000001),
    ("rr_expected", 100_000_000),
    ("holding_time", -1),
    ("holding_time", 2_147_483_648),
    ("confidence_level", 0),
    ("confidence_level", 11),
    ("confidence_level", "high"),
    ("market_condition", "sideways"),
    ("trading_session", "tokyo"),
    ("volume", "huge"),
    ("bias", "bullish"),  # case-sensitive
    ("exit_type", "take profit"),  # case-sensitive
    ("trade_quality_grade", "B+"),
    ("asset_type", "bonds"),
    ("emotional_state", "sleepy"),
    ("setup_quality", "x" * 101),
    ("trade_date", "1999-12-31"),
    ("trade_date", "2026-11-21T00:00:00Z"),  # after tomorrow
    ("trade_date", "last tuesday"),
    ("account_id", 4),  # archived
    ("account_id", 5),  # another user's
    ("strategy_id", 999),
]


@pytest.mark.parametrize(("field", "value"), REJECTED)
async def test_trade_field_rejections(live: Live, field: str, value: Any) -> None:
    resp = await live.call("POST", "/trades", json={**TRADE, field: value}, headers=key())
    body = resp.json()
    assert (resp.status_code, body["error"]["code"]) == (400, "validation_error"), body
    assert field in body["error"]["details"]["fields"]


async def test_trade_accepted_edges_and_quirks(live: Live) -> None:
    before = live.state.counters["validation_error"]
    edge = {
        **TRADE,
        "symbol": " es ".strip(),
        "trade_date": "2026-11-19",  # tomorrow, date-only: midnight UTC
        "quantity": "9999999999.99",
        "sl_price": 0.00000001,
        "confidence_level": "10",
        "holding_time": 0,
        "bias": "Neutral",
        "exit_type": "Partial / Scale Out",
        "emotional_state": "focused",
        "asset_type": "forex",
        "asset_config": {"lot_type": "mini", "pip_value": "1.0"},
        "learning_notes": "a\u0000b\u0007c",
    }
    made = await live.call("POST", "/trades", json=edge, headers=key())
    assert made.status_code == 201, made.text
    trade = made.json()["data"]["trade"]
    assert (trade["symbol"], trade["trade_date"]) == ("ES", "2026-11-19T00:00:00Z")
    assert (trade["quantity"], trade["confidence_level"]) == (9999999999.99, 10)
    assert trade["learning_notes"] == "ab\u0007c"  # NUL stripped, other controls kept
    assert trade["gross_pnl"] == 10  # net + default fees of 0
    raw = (
        b'{"account_id": 1, "trade_date": "2026-11-17", "symbol": "N\x00Q", '
        b'"direction": "short", "net_pnl": 1}'
    )
    nul = await live.call(
        "POST", "/trades", content=raw, headers={**key(), "Content-Type": "application/json"}
    )
    assert nul.json()["data"]["trade"]["symbol"] == "NQ"
    config = await live.call(
        "POST",
        "/trades",
        headers=key(),
        json={**TRADE, "asset_type": "forex", "asset_config": {"lot_type": "jumbo"}},
    )
    assert set(config.json()["error"]["details"]["asset_config_errors"]) == {"lot_type"}
    assert live.state.counters["validation_error"] == before + 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/trades/1/tags", {"tag_ids": list(range(1, 102))}),
        ("PUT", "/trades/1/executions", {"entries": [{"price": 1, "quantity": 1}] * 201}),
        ("PUT", "/trades/1/executions", {"exits": [{"price": 1, "quantity": 0}]}),
        ("PUT", "/trades/1/executions", {"entries": [{"price": 1}]}),
        ("PUT", "/trades/1/confirmations", {"confirmations": [{"was_present": True}]}),
        ("POST", "/tag-categories", {"name": "x" * 51}),
        ("POST", "/tags", {"category_id": 1, "name": "T", "color": "blue"}),
        ("POST", "/strategies", {"name": "S", "setups": [{"name": "x"}] * 51}),
        ("POST", "/accounts", {"account_name": "A", "currency": "dollars"}),
        ("POST", "/accounts/1/balance/payouts", {"gross_amount": 0}),
        ("POST", "/copy-groups", {"name": "G", "copy_mode": "mirror"}),
        ("PATCH", "/trades/1", {}),
        ("POST", "/protocols/1/responses", {"item_values": []}),
    ],
)
async def test_other_bounds(live: Live, method: str, path: str, body: dict[str, Any]) -> None:
    resp = await live.call(method, path, json=body, headers=key())
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "validation_error")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"direction": "up"},
        {"outcome": "draw"},
        {"is_copy": "maybe"},
        {"cursor": "not-a-cursor!"},
        {"pnl_min": "lots"},
        {"from": "someday"},
    ],
)
async def test_trade_list_filter_rejections(live: Live, params: dict[str, Any]) -> None:
    resp = await live.call("GET", "/trades", params=params)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "validation_error")


async def test_idempotency_key_format(live: Live) -> None:
    for bad in ("", "x" * 65, "has space", "dot.key", "a/b"):
        resp = await live.call("POST", "/tag-categories", json={"name": "K"}, headers={
            "Idempotency-Key": bad})  # fmt: skip
        assert resp.status_code == 400, bad
    ok = await live.call(
        "POST", "/tag-categories", json={"name": "K"}, headers={"Idempotency-Key": "A-z_9" * 12}
    )
    assert ok.status_code == 201


async def test_auth_header_shapes(live: Live) -> None:
    for headers in (
        {"Authorization": f"Basic {DEMO_KEY}"},
        {"Authorization": "Bearer x"},
        {"Authorization": f"Bearer {DEMO_KEY[:-1]}"},
        {"X-API-Key": "tvty_short"},
    ):
        resp = await live.http.get(live.base + "/me", headers=headers)
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "unauthorized")
    lower = await live.http.get(live.base + "/me", headers={"authorization": f"bearer {DEMO_KEY}"})
    assert lower.status_code == 200
    for name in ("api_key", "key", "token", "access_token"):
        resp = await live.http.get(live.base + "/me", params={name: DEMO_KEY})
        assert resp.status_code == 401
        assert "query string" in resp.json()["error"]["message"]
    # Even alongside a valid header, a key in the URL is refused.
    both = await live.call("GET", "/me", params={"api_key": DEMO_KEY})
    assert both.status_code == 401


async def test_usage_is_per_key(live: Live) -> None:
    for _ in range(3):
        await live.call("GET", "/trades/999999")
    await live.call("GET", "/me", key=SECOND_PRO_KEY)
    usage = (await live.data("GET", "/usage"))["last_24h"]
    assert (usage["requests"], usage["errors"], usage["last_60s"]) == (3, 3, 3)
    live.clock.advance(61)
    later = await live.data("GET", "/usage")
    assert (later["last_24h"]["requests"], later["last_24h"]["last_60s"]) == (4, 0)
    assert later["top_paths"][0] == {"path": "/api/v1/trades/999999", "requests": 3}
