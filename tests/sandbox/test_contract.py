"""Contract points the reference states and the sandbox once read differently (issue 13):
offset pagination on every list, the manual sync's failure answers (broker_api_error,
sync_failed, an inactive connection), the storage quota, and the smaller misreadings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tradavity_mcp.sandbox import FREE_KEY, FaultSpec

from .conftest import Live

pytestmark = pytest.mark.anyio


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    lists = [v for v in data.values() if isinstance(v, list)]
    assert len(lists) == 1, data
    return lists[0]


async def _make_tags(live: Live, count: int) -> None:
    for i in range(count):
        resp = await live.call(
            "POST", "/tags", json={"category_id": 2, "name": f"Extra {i:03d}"}, headers=key()
        )
        assert resp.status_code == 201, resp.text


async def _new_trade(live: Live, **extra: Any) -> int:
    body = {
        "account_id": 1,
        "trade_date": "2026-11-17T14:31:00Z",
        "symbol": "MNQ",
        "direction": "long",
        "net_pnl": 12.5,
        **extra,
    }
    resp = await live.call("POST", "/trades", json=body, headers=key())
    assert resp.status_code == 201, resp.text
    return int(resp.json()["data"]["trade"]["trade_number"])


# --- pagination -----------------------------------------------------------------------------


async def test_tags_page_by_offset_with_the_documented_defaults(live: Live) -> None:
    await _make_tags(live, 130)
    first = await live.data("GET", "/tags")
    total = first["total_count"]
    assert total == 143  # 13 seeded + 130
    assert len(first["tags"]) == 50  # the default page
    assert first["has_more"] is True
    third = await live.data("GET", "/tags", params={"offset": 100})
    assert len(third["tags"]) == 43
    assert third["has_more"] is False
    assert third["total_count"] == total
    everything = await live.data("GET", "/tags", params={"limit": 500})
    assert len(everything["tags"]) == total
    assert everything["has_more"] is False
    paged = [
        t["tag_id"]
        for offset in (0, 50, 100)
        for t in (await live.data("GET", "/tags", params={"offset": offset}))["tags"]
    ]
    assert paged == [t["tag_id"] for t in everything["tags"]]
    assert len(set(paged)) == total
    past = await live.data("GET", "/tags", params={"offset": 1000})
    assert past["tags"] == []
    assert past["has_more"] is False


@pytest.mark.parametrize(
    "params", [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"limit": "many"}]
)
async def test_limits_outside_the_documented_range_are_refused(
    live: Live, params: dict[str, Any]
) -> None:
    resp = await live.call("GET", "/tags", params=params)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "validation_error"
    assert set(resp.json()["error"]["details"]["fields"]) <= {"limit", "offset"}


LISTS = [
    "/accounts",
    "/tags",
    "/tag-categories",
    "/strategies",
    "/strategies/1/setups",
    "/protocols",
    "/copy-groups",
    "/autosync/connections",
    "/goals",
]


@pytest.mark.parametrize("path", LISTS)
async def test_every_list_pages_and_counts(live: Live, path: str) -> None:
    full = await live.data("GET", path, params={"limit": 500})
    rows = _rows(full)
    assert full["total_count"] == len(rows) >= 1
    assert full["has_more"] is False
    one = await live.data("GET", path, params={"limit": 1})
    assert _rows(one) == rows[:1]
    assert one["total_count"] == len(rows)
    assert one["has_more"] is (len(rows) > 1)
    last = await live.data("GET", path, params={"limit": 1, "offset": len(rows) - 1})
    assert _rows(last) == rows[-1:]
    assert last["has_more"] is False


# --- manual sync failures -------------------------------------------------------------------


async def _sync(live: Live, connection: int = 1, idem: str | None = None) -> Any:
    headers = {"Idempotency-Key": idem or uuid.uuid4().hex}
    return await live.call("POST", f"/autosync/connections/{connection}/sync", headers=headers)


async def _manual_log(live: Live) -> list[dict[str, Any]]:
    log = await live.data("GET", "/autosync/log", params={"connection_id": 1, "limit": 200})
    return [r for r in log["log"] if r["trigger"] == "manual"]


async def test_broker_api_error_is_a_502_logged_as_a_failed_run(live: Live) -> None:
    live.state.set_faults(FaultSpec(broker_api_error=1.0))
    resp = await _sync(live, idem="sync-broker-1")
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "broker_api_error"
    assert live.state.counters["broker_api_error"] == 1
    failed = await _manual_log(live)
    assert [r["status"] for r in failed] == ["failed"]
    assert failed[0]["imported"] == 0
    # The failed run still counts against the per-connection cooldown.
    again = await _sync(live, idem="sync-broker-1")
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "connection_sync_cooldown"
    # Twenty seconds on, with the broker back, the same key runs afresh (errors are not
    # cached for replays).
    live.state.set_faults(None)
    live.clock.advance(21)
    ok = await _sync(live, idem="sync-broker-1")
    assert ok.status_code == 200
    assert ok.headers.get("x-idempotent-replay") is None
    assert [r["status"] for r in await _manual_log(live)] == ["success", "failed"]


async def test_sync_failed_is_a_500_without_a_log_row(live: Live) -> None:
    live.state.set_faults(FaultSpec(sync_failed=1.0))
    resp = await _sync(live)
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "sync_failed"
    assert await _manual_log(live) == []
    assert live.state.counters["sync_failed"] == 1


async def test_sync_faults_touch_nothing_but_the_manual_sync(live: Live) -> None:
    live.state.set_faults(FaultSpec(broker_api_error=1.0, sync_failed=1.0))
    assert (await live.call("GET", "/tags")).status_code == 200
    await _new_trade(live)
    # The endpoint's own gates answer first: an expired token is still a 401.
    expired = await _sync(live, connection=2)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    assert live.state.counters["broker_api_error"] == live.state.counters["sync_failed"] == 0


def test_the_fault_spec_names_the_sync_faults() -> None:
    spec = FaultSpec.parse("broker_api_error=0.5, sync_failed=0.25")
    assert (spec.broker_api_error, spec.sync_failed) == (0.5, 0.25)
    with pytest.raises(ValueError, match="from 0 to 1"):
        FaultSpec.parse("sync_failed=2")


async def test_an_inactive_connection_is_a_400(live: Live) -> None:
    # Archiving the account disconnects its auto-sync, as the reference describes.
    assert (await live.call("DELETE", "/accounts/1", headers=key())).status_code == 204
    conn = await live.data("GET", "/autosync/connections/1")
    assert conn["connection"]["is_active"] is False
    resp = await _sync(live)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "validation_error"


# --- storage quota --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000


async def test_storage_quota_is_a_413_naming_the_cap(live: Live) -> None:
    number = await _new_trade(live)
    used = (await live.data("GET", "/me"))["storage"]["used_bytes"]
    live.state.set_storage_quota(1, used + 1000)
    assert (await live.data("GET", "/me"))["storage"]["quota_bytes"] == used + 1000
    resp = await live.call(
        "POST",
        f"/trades/{number}/screenshots",
        files={"file": ("chart.png", PNG, "image/png")},
        headers=key(),
    )
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert error["code"] == "limit_reached"
    assert error["details"]["cap"] == "storage"
    assert error["details"]["quota_bytes"] == used + 1000
    live.state.set_storage_quota(1, None)
    again = await live.call(
        "POST",
        f"/trades/{number}/screenshots",
        files={"file": ("chart.png", PNG, "image/png")},
        headers=key(),
    )
    assert again.status_code == 201


# --- the smaller misreadings ----------------------------------------------------------------


async def _checklist(live: Live) -> tuple[str, dict[str, Any]]:
    proto = (await live.data("GET", "/protocols/1"))["protocol"]
    items = {i["label"]: i["item_id"] for s in proto["sections"] for i in s["items"]}
    values = {
        str(items["Charts are loaded"]): "1",
        str(items["News in the next 30 minutes?"]): "no",
        str(items["Bias"]): "short",
        str(items["Conviction"]): 4,
    }
    return "/protocols/1/responses", values


async def test_trade_number_filter_leaves_out_unlinked_responses(live: Live) -> None:
    path, values = await _checklist(live)
    number = await _new_trade(live)
    for body in ({"item_values": values}, {"item_values": values, "trade_number": number}):
        assert (await live.call("POST", path, json=body, headers=key())).status_code == 201
    linked = await live.data("GET", path, params={"trade_number": number, "status": "all"})
    assert [r["trade_number"] for r in linked["responses"]] == [number]
    assert linked["total_count"] == 1


async def test_a_trade_shows_at_most_one_response_per_protocol_type(live: Live) -> None:
    path, values = await _checklist(live)
    number = await _new_trade(live)
    made = []
    for conviction in (2, 5):
        body = {"item_values": {**values, "4": conviction}, "trade_number": number}
        live.clock.advance(60)
        resp = await live.call("POST", path, json=body, headers=key())
        assert resp.status_code == 201, resp.text
        made.append(resp.json()["data"]["response"]["response_id"])
    draft = {"item_values": {"3": "long"}, "trade_number": number, "status": "draft"}
    live.clock.advance(60)
    assert (await live.call("POST", path, json=draft, headers=key())).status_code == 201
    trade = (await live.data("GET", f"/trades/{number}"))["trade"]
    rows = trade["protocol_responses"]
    assert [r["protocol_type"] for r in rows] == ["pre_trade"]
    # The newest completed response stands for the type (a later draft does not).
    assert rows[0]["response_id"] == made[-1]
    assert rows[0]["status"] == "completed"


@pytest.mark.parametrize(
    ("config", "bad"),
    [
        (
            {"option_type": "call", "strike_price": "abc", "expiration": "2026-12-18"},
            "strike_price",
        ),
        ({"option_type": "put", "strike_price": -5, "expiration": "2026-12-18"}, "strike_price"),
        ({"option_type": "call", "strike_price": 21000, "expiration": "2026-13-01"}, "expiration"),
        ({"option_type": "call", "strike_price": 21000, "expiration": "next friday"}, "expiration"),
    ],
)
async def test_options_strike_and_expiration_are_validated(
    live: Live, config: dict[str, Any], bad: str
) -> None:
    body = {
        "account_id": 1,
        "trade_date": "2026-11-17T14:31:00Z",
        "symbol": "NQZ6 C21000",
        "direction": "long",
        "net_pnl": 5,
        "asset_type": "options",
        "asset_config": config,
    }
    resp = await live.call("POST", "/trades", json=body, headers=key())
    assert resp.status_code == 400
    assert set(resp.json()["error"]["details"]["asset_config_errors"]) == {bad}


async def test_a_valid_options_config_is_stored(live: Live) -> None:
    config = {"option_type": "call", "strike_price": "21000.5", "expiration": "2026-12-18"}
    number = await _new_trade(live, asset_type="options", asset_config=config)
    trade = (await live.data("GET", f"/trades/{number}"))["trade"]
    assert trade["asset_type"] == "options"


async def test_confirmation_was_present_reads_booleans_and_notes_count_bytes(live: Live) -> None:
    number = await _new_trade(live)
    path = f"/trades/{number}/confirmations"
    wide = "é" * 30_000  # 60,000 bytes: inside the cap
    body = {
        "confirmations": [
            {"confirmation_id": 1, "was_present": "false", "notes": wide},
            {"confirmation_id": 2, "was_present": 0},
            {"confirmation_id": 3},
            {"confirmation_id": 4, "was_present": "true"},
        ]
    }
    stored = await live.data("PUT", path, json=body, headers=key())
    present = {c["confirmation_id"]: c["was_present"] for c in stored["confirmations"]}
    assert present == {1: False, 2: False, 3: True, 4: True}
    read = (await live.data("GET", f"/trades/{number}"))["trade"]["confirmations"]
    assert {c["confirmation_id"]: c["was_present"] for c in read} == present
    maybe = await live.call(
        "PUT",
        path,
        json={"confirmations": [{"confirmation_id": 1, "was_present": "maybe"}]},
        headers=key(),
    )
    assert maybe.status_code == 400
    # 40,000 characters but 80,000 bytes: over the 65,535-byte cap.
    long_notes = {"confirmations": [{"confirmation_id": 1, "notes": "é" * 40_000}]}
    too_long = await live.call("PUT", path, json=long_notes, headers=key())
    assert too_long.status_code == 400
    assert "bytes" in str(too_long.json()["error"]["details"]["fields"])


async def test_a_tag_in_an_unknown_category_is_a_validation_error(live: Live) -> None:
    resp = await live.call(
        "POST", "/tags", json={"category_id": 9999, "name": "Nowhere"}, headers=key()
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "validation_error"
    assert "category_id" in resp.json()["error"]["details"]["fields"]
    moved = await live.call("PATCH", "/tags/1", json={"category_id": 9999}, headers=key())
    assert moved.status_code == 400
    assert "category_id" in moved.json()["error"]["details"]["fields"]


async def test_free_plan_trade_cap_counts_the_month_too(live: Live) -> None:
    accounts = (await live.data("GET", "/accounts", FREE_KEY))["accounts"]
    body = {
        "account_id": accounts[0]["account_id"],
        "trade_date": "2026-11-17T14:31:00Z",
        "symbol": "ES",
        "direction": "short",
        "net_pnl": -3,
    }
    first = await live.call("POST", "/trades", FREE_KEY, json=body, headers=key())
    assert first.status_code == 201
    # Earlier this month (before today) the user made trades up to the monthly cap.
    store = live.state.store
    model = next(t for t in store.all("trade", 2) if t["created_at"].startswith("2026-11-18"))
    month = sum(1 for t in store.all("trade", 2) if t["created_at"].startswith("2026-11"))
    for _ in range(500 - month):
        tid = store.next_id("trade")
        store.put("trade", tid, 2, {**model, "trade_id": tid, "created_at": "2026-11-03T10:00:00Z"})
    capped = await live.call("POST", "/trades", FREE_KEY, json=body, headers=key())
    assert capped.status_code == 429
    error = capped.json()["error"]
    assert error["code"] == "limit_reached"
    assert error["details"]["usage"]["month"] == 500
    assert error["details"]["usage"]["day"] < error["details"]["usage"]["day_cap"] == 100
    assert "month" in error["message"]


async def test_archiving_twice_says_already_archived(live: Live) -> None:
    number = await _new_trade(live)
    assert (await live.call("DELETE", f"/trades/{number}", headers=key())).status_code == 204
    again = await live.call("DELETE", f"/trades/{number}", headers=key())
    assert again.status_code == 404
    assert again.json()["error"]["message"] == "Trade is already archived."


async def test_a_name_shared_with_an_archived_account_means_the_active_one(live: Live) -> None:
    archived = (await live.data("GET", "/accounts/4"))["account"]
    assert archived["is_archived"] is True
    made = await live.data(
        "POST", "/accounts", json={"account_name": archived["account_name"]}, headers=key()
    )
    active_id = made["account"]["account_id"]
    number = await _new_trade(live, account_id=active_id)
    name = archived["account_name"].upper()
    rows = (await live.data("GET", "/trades", params={"account": name}))["trades"]
    assert [r["trade_number"] for r in rows] == [number]
    summary = await live.data("GET", "/stats/summary", params={"account": name, "range": "all"})
    assert summary["totals"]["trade_rows"] == 1
    assert summary["totals"]["total_net_pnl"] == 12.5


async def test_moving_a_trade_to_another_strategy_refuses_the_old_setup(live: Live) -> None:
    number = await _new_trade(live, strategy_id=1, setup_id=1)
    moved = await live.call("PATCH", f"/trades/{number}", json={"strategy_id": 2}, headers=key())
    assert moved.status_code == 400
    assert "setup_id" in moved.json()["error"]["details"]["fields"]
    both = await live.call(
        "PATCH", f"/trades/{number}", json={"strategy_id": 2, "setup_id": None}, headers=key()
    )
    assert both.status_code == 200
    assert both.json()["data"]["trade"]["strategy"] is not None
    assert both.json()["data"]["trade"]["setup"] is None
