"""The resource families beyond trades: accounts and balance, strategies, protocols, goals,
copy groups; over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tradavity_mcp.sandbox import FREE_KEY, READONLY_KEY

from .conftest import Live

pytestmark = pytest.mark.anyio

_n = iter(range(10_000))


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"r{next(_n)}"}


def err(resp: Any) -> dict[str, Any]:
    body = resp.json()
    assert body["ok"] is False, body
    return dict(body["error"])


async def test_account_create_patch_archive(live: Live) -> None:
    made = await live.call(
        "POST",
        "/accounts",
        headers=key(),
        json={"account_name": "TopStep XFA #2", "account_type": "trading_combine",
              "currency": "eur", "broker_key": "topstepx"},
    )  # fmt: skip
    assert made.status_code == 201
    account = made.json()["data"]["account"]
    assert (account["currency"], account["is_archived"]) == ("EUR", False)
    assert account["breakeven_offset_low"] == account["breakeven_offset_high"] == 0
    aid = account["account_id"]
    dup = await live.call("POST", "/accounts", json={"account_name": "apex 50k"}, headers=key())
    assert (dup.status_code, err(dup)["code"]) == (409, "duplicate_name")
    bad = await live.call(
        "POST",
        "/accounts",
        headers=key(),
        json={"account_name": "X", "broker_key": "nope", "breakeven_offset_low": 3,
              "account_type": "casino"},
    )  # fmt: skip
    assert set(err(bad)["details"]["fields"]) == {
        "broker_key",
        "breakeven_offset_low",
        "account_type",
    }
    patched = await live.data(
        "PATCH", f"/accounts/{aid}", headers=key(), json={"breakeven_offset_high": "2.5"}
    )
    assert patched["account"]["breakeven_offset_high"] == 2.5
    mixed = await live.call(
        "PATCH", f"/accounts/{aid}", headers=key(), json={"is_archived": True, "currency": "USD"}
    )
    assert "is_archived" in err(mixed)["details"]["fields"]
    assert (await live.call("DELETE", f"/accounts/{aid}", headers=key())).status_code == 204
    again = await live.call("DELETE", f"/accounts/{aid}", headers=key())
    assert again.status_code == 404
    back = await live.data("PATCH", f"/accounts/{aid}", headers=key(), json={"is_archived": False})
    assert back["account"]["is_archived"] is False
    # Archiving disconnects the account's auto-sync.
    await live.call("DELETE", "/accounts/1", headers=key())
    conn = (await live.data("GET", "/autosync/connections/1"))["connection"]
    assert (conn["is_active"], conn["status"]) == (False, "disconnected")
    # The only active account cannot be archived; the free plan caps accounts at three.
    only = await live.call("DELETE", "/accounts/5", key=FREE_KEY, headers=key())
    assert (only.status_code, err(only)["code"]) == (409, "conflict")
    for name in ("Two", "Three"):
        ok = await live.call("POST", "/accounts", key=FREE_KEY, json={"account_name": name})
        assert ok.status_code == 201
    capped = await live.call("POST", "/accounts", key=FREE_KEY, json={"account_name": "Four"})
    assert (capped.status_code, err(capped)["code"]) == (429, "limit_reached")


async def test_balance_events_and_payouts(live: Live) -> None:
    account = (await live.data("GET", "/accounts/1"))["account"]
    assert account["balance"]["current_balance"] == 52340.5
    basic = (await live.data("GET", "/accounts/1", params={"include": "basic"}))["account"]
    assert "balance" not in basic
    events = await live.data("GET", "/accounts/1/balance/events", params={"limit": 2})
    assert (len(events["events"]), events["total_count"], events["has_more"]) == (2, 4, True)
    violations = await live.data(
        "GET", "/accounts/1/balance/events", params={"event_type": "rule_violation"}
    )
    assert [e["event_type"] for e in violations["events"]] == ["rule_violation"]
    bad_type = await live.call("GET", "/accounts/1/balance/events", params={"event_type": "x"})
    assert "manual_update" in err(bad_type)["details"]["allowed"]
    made = await live.call(
        "POST", "/accounts/1/balance/events", headers=key(), json={"note": "Checked statement."}
    )
    assert (made.status_code, made.json()["data"]["event"]["event_type"]) == (201, "manual_update")
    no_profile = await live.call(
        "POST", "/accounts/2/balance/events", headers=key(), json={"note": "x"}
    )
    assert err(no_profile)["code"] == "validation_error"
    payout = await live.call(
        "POST", "/accounts/1/balance/payouts", headers=key(), json={"gross_amount": 2000}
    )
    row = payout.json()["data"]["payout"]
    assert (row["status"], row["net_amount"], row["firm_cut"]) == ("pending", 1800.0, 200.0)
    too_much = await live.call(
        "POST", "/accounts/1/balance/payouts", headers=key(), json={"gross_amount": 50341}
    )
    assert "gross_amount" in err(too_much)["details"]["fields"]  # 52,340.50 - 2,000 pending
    listed = await live.data("GET", "/accounts/1/balance/payouts")
    assert [p["status"] for p in listed["payouts"]] == ["pending", "paid"]
    read_only = await live.call("GET", "/accounts/1/balance", key=READONLY_KEY)
    assert read_only.status_code == 200


async def test_strategy_create_upsert_delete(live: Live) -> None:
    body = {
        "name": "Breakout Scalp",
        "color_tag": "#ef4444",
        "risk_rules": {"max_r": 1},
        "setups": [
            {"name": "Bull Flag Break", "confirmations": [{"name": "Pulled back to 9 EMA"}]},
            {"name": "Bear Flag Break", "sort_order": 5},
        ],
    }
    made = await live.call("POST", "/strategies", json=body, headers=key())
    assert made.status_code == 201
    strategy = made.json()["data"]["strategy"]
    sid = strategy["strategy_id"]
    bull, bear = strategy["setups"]
    assert (bull["sort_order"], bear["sort_order"]) == (0, 5)
    dup = await live.call("POST", "/strategies", json={"name": "breakout scalp"}, headers=key())
    assert err(dup)["code"] == "duplicate_name"
    listed = (await live.data("GET", "/strategies"))["strategies"]
    assert next(s for s in listed if s["strategy_id"] == sid)["setup_count"] == 2
    assert all("setups" not in s for s in listed)
    # Keep the bull setup (renamed, same id), drop the bear one, add a new one.
    confirmation = bull["confirmations"][0]["confirmation_id"]
    patched = await live.data(
        "PATCH",
        f"/strategies/{sid}",
        headers=key(),
        json={
            "setups": [
                {"setup_id": bull["setup_id"], "name": "Bull Flag",
                 "confirmations": [{"confirmation_id": confirmation, "name": "At 9 EMA"},
                                   {"name": "Volume spike"}]},
                {"name": "Range Breakout"},
            ]
        },
    )  # fmt: skip
    setups = patched["strategy"]["setups"]
    assert setups[0]["setup_id"] == bull["setup_id"]
    assert [c["name"] for c in setups[0]["confirmations"]] == ["At 9 EMA", "Volume spike"]
    assert setups[0]["confirmations"][0]["confirmation_id"] == confirmation
    assert bear["setup_id"] not in {s["setup_id"] for s in setups}
    foreign = await live.call(
        "PATCH",
        f"/strategies/{sid}",
        headers=key(),
        json={"setups": [{"setup_id": 1, "name": "Stolen"}]},
    )
    assert err(foreign)["details"]["unknown_setup_ids"] == [1]
    foreign_conf = await live.call(
        "PATCH",
        f"/strategies/{sid}",
        headers=key(),
        json={"setups": [{"setup_id": bull["setup_id"], "name": "B",
                          "confirmations": [{"confirmation_id": 1, "name": "x"}]}]},
    )  # fmt: skip
    assert err(foreign_conf)["details"]["unknown_confirmation_ids"] == [1]
    scoped = await live.data("PATCH", f"/strategies/{sid}", headers=key(), json={"account_id": 2})
    assert (scoped["strategy"]["account_id"], scoped["strategy"]["copy_group_id"]) == (2, None)
    # Deleting a seeded strategy unlinks its trades.
    used = await live.data("GET", "/trades", params={"strategy_id": 1, "limit": 200})
    gone = await live.call("DELETE", "/strategies/1", headers=key())
    assert gone.status_code == 204
    assert int(gone.headers["x-trades-unlinked"]) == len(used["trades"]) > 0
    assert (await live.call("GET", "/strategies/1")).status_code == 404


async def test_protocol_create_patch_delete_and_response_edits(live: Live) -> None:
    body = {
        "type": "pre_trade",
        "name": "Scalp checklist",
        "set_as_default": True,
        "sections": [
            {"name": "Pre-flight", "items": [
                {"item_type": "checkbox", "label": "Charts loaded", "is_required": True},
                {"item_type": "select", "label": "Bias", "options": ["long", "short"]},
            ]},
            {"name": "Risk", "items": [{"item_type": "number", "label": "R"}]},
        ],
    }  # fmt: skip
    made = await live.call("POST", "/protocols", json=body, headers=key())
    assert made.status_code == 201
    proto = made.json()["data"]["protocol"]
    assert proto["is_default"] is False  # the seeded pre-trade checklist is already default
    pid = proto["protocol_id"]
    items = [i for s in proto["sections"] for i in s["items"]]
    one_option = {**body, "sections": [{"name": "S", "items": [
        {"item_type": "select", "label": "Bias", "options": ["long"]}]}]}  # fmt: skip
    bad = await live.call("POST", "/protocols", json=one_option, headers=key())
    assert "sections[0].items[0].options" in err(bad)["details"]["fields"]
    empty = await live.call("POST", "/protocols", json={**body, "sections": []}, headers=key())
    assert "sections" in err(empty)["details"]["fields"]
    default = await live.data(
        "PATCH", f"/protocols/{pid}", headers=key(), json={"is_default": True}
    )
    assert default["protocol"]["is_default"] is True
    seeded = (await live.data("GET", "/protocols/1"))["protocol"]
    assert seeded["is_default"] is False
    path = f"/protocols/{pid}/responses"
    draft = await live.data(
        "POST", path, headers=key(), json={"item_values": {str(items[1]["item_id"]): "long"},
                                           "status": "draft"},
    )  # fmt: skip
    rid = draft["response"]["response_id"]
    assert draft["response"]["completed_at"] is None
    incomplete = await live.call(
        "PATCH", f"{path}/{rid}", headers=key(), json={"status": "completed"}
    )
    assert err(incomplete)["details"]["missing"] == [items[0]["item_id"]]
    done = await live.data(
        "PATCH",
        f"{path}/{rid}",
        headers=key(),
        json={"status": "completed", "item_values": {str(items[0]["item_id"]): "1"}},
    )
    assert done["response"]["completed_at"] is not None
    assert [a["value"] for a in done["response"]["answers"]] == ["1"]
    listed = await live.data("GET", path, params={"from": "2026-11-18", "to": "2026-11-18"})
    assert [r["response_id"] for r in listed["responses"]] == [rid]
    earlier = await live.data("GET", path, params={"to": "2026-11-01"})
    assert earlier["responses"] == []
    assert (await live.call("DELETE", f"{path}/{rid}", headers=key())).status_code == 204
    assert (await live.call("DELETE", f"{path}/{rid}", headers=key())).status_code == 404
    assert (await live.call("DELETE", f"/protocols/{pid}", headers=key())).status_code == 204
    assert (await live.call("GET", f"/protocols/{pid}")).status_code == 404


async def test_goals(live: Live) -> None:
    active = (await live.data("GET", "/goals"))["goals"]
    assert {g["goal_name"] for g in active} == {
        "Monthly profit target",
        "Max 5 trades a day",
        "Weekly win rate 55%",
    }
    every = (await live.data("GET", "/goals", params={"status": "all"}))["goals"]
    assert len(every) == 4
    made = await live.data(
        "POST",
        "/goals",
        headers=key(),
        json={"goal_name": "November", "metric": "net_pnl", "target_value": 5000,
              "timeframe": "custom", "custom_start": "2026-11-01", "custom_end": "2026-11-30"},
    )  # fmt: skip
    goal = made["goal"]
    assert (goal["direction"], goal["scope"]) == ("at_least", "all")
    natural = await live.data(
        "POST", "/goals", headers=key(),
        json={"goal_name": "DD", "metric": "max_drawdown", "target_value": 0},
    )  # fmt: skip
    assert natural["goal"]["direction"] == "at_most"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"metric": "luck"}, "allowed"),
        ({"timeframe": "hourly"}, "allowed"),
        ({"target_value": 0}, "fields"),
        ({"timeframe": "custom", "custom_start": "2026-11-01"}, "fields"),
        ({"custom_start": "2026-11-01"}, "fields"),
        ({"timeframe": "custom", "custom_start": "2026-11-10", "custom_end": "2026-11-01"},
         "fields"),
        ({"timeframe": "custom", "custom_start": "1999-12-31", "custom_end": "2026-11-01"},
         "fields"),
    ]  # fmt: skip
    base = {"goal_name": "G", "metric": "net_pnl", "target_value": 100}
    for extra, where in cases:
        resp = await live.call("POST", "/goals", headers=key(), json={**base, **extra})
        assert (resp.status_code, where in err(resp)["details"]) == (400, True), extra
    snaps = await live.data("GET", f"/goals/{goal['goal_id']}/snapshots")
    (only,) = snaps["snapshots"]
    assert (only["period_start"], only["period_end"]) == ("2026-11-01", "2026-11-30")
    assert only["actual"] == only["snapshot_data"]["net_pnl"]
    assert only["achieved"] == (only["actual"] >= 5000)
    daily = await live.data("GET", "/goals/2/snapshots", params={"limit": 5})
    assert len(daily["snapshots"]) == 5
    assert daily["snapshots"][0]["period_start"] == "2026-11-18"
    paused = await live.data(
        "PATCH", f"/goals/{goal['goal_id']}", headers=key(),
        json={"status": "paused", "scope": "account_2"},
    )  # fmt: skip
    assert (paused["goal"]["status"], paused["goal"]["account_id"]) == ("paused", 2)
    assert (await live.call("DELETE", "/goals/1", headers=key())).status_code == 204
    assert (await live.call("GET", "/goals/1")).status_code == 404


async def test_copy_groups(live: Live) -> None:
    groups = (await live.data("GET", "/copy-groups"))["copy_groups"]
    assert [(g["name"], g["member_count"]) for g in groups] == [("Apex + Topstep", 2)]
    group = (await live.data("GET", "/copy-groups/1"))["copy_group"]
    assert [m["account_name"] for m in group["members"]] == ["Apex 50K", "Topstep XFA"]
    assert group["master_account_id"] == 1
    free = await live.call("POST", "/copy-groups", key=FREE_KEY, json={"name": "Mine"})
    assert (free.status_code, err(free)["code"]) == (429, "limit_reached")
    made = await live.data("POST", "/copy-groups", headers=key(), json={"name": "Solo"})
    gid = made["copy_group"]["group_id"]
    assert made["copy_group"]["copy_mode"] == "master"
    taken = await live.call(
        "PUT", f"/copy-groups/{gid}/members", headers=key(),
        json={"members": [{"account_id": 2}, {"account_id": 3, "quantity_multiplier": 2}]},
    )  # fmt: skip
    assert (taken.status_code, err(taken)["details"]["conflicting_account_ids"]) == (409, [2])
    bad = await live.call(
        "PUT", f"/copy-groups/{gid}/members", headers=key(),
        json={"members": [{"account_id": 3, "quantity_multiplier": 0}]},
    )  # fmt: skip
    assert "members[0].quantity_multiplier" in err(bad)["details"]["fields"]
    members = await live.data(
        "PUT", f"/copy-groups/{gid}/members", headers=key(), json={"members": [{"account_id": 3}]}
    )
    assert members["copy_group"]["members"][0]["quantity_multiplier"] == 1.0
    outsider = await live.call(
        "PATCH", f"/copy-groups/{gid}", headers=key(), json={"master_account_id": 1}
    )
    assert "master_account_id" in err(outsider)["details"]["fields"]
    # Dropping the master from the seeded group clears it.
    shrunk = await live.data(
        "PUT", "/copy-groups/1/members", headers=key(), json={"members": [{"account_id": 2}]}
    )
    assert shrunk["copy_group"]["master_account_id"] is None
    await live.data("PATCH", "/strategies/2", headers=key(), json={"copy_group_id": gid})
    assert (await live.call("DELETE", f"/copy-groups/{gid}", headers=key())).status_code == 204
    assert (await live.data("GET", "/strategies/2"))["strategy"]["copy_group_id"] is None


async def test_trade_detail_shape_and_scoped_parts(live: Live) -> None:
    number = (await live.data("GET", "/trades", params={"limit": 1}))["trades"][0]["trade_number"]
    trade = (await live.data("GET", f"/trades/{number}"))["trade"]
    documented = {
        "trade_number", "trade_date", "symbol", "asset_type", "direction", "quantity",
        "multiplier", "sl_price", "tp_price", "rr_expected", "rr_realized", "gross_pnl", "fees",
        "net_pnl", "total_points", "holding_time", "market_condition", "trading_session",
        "volume", "news_events", "grade", "emotional_state", "bias", "confidence_level",
        "setup_quality", "exit_type", "thought_process", "mistakes_made", "learning_notes",
        "general_notes", "account", "strategy", "setup", "is_copy", "is_copy_source",
        "source_trade_number", "executions", "tags", "confirmations", "screenshots",
        "protocol_responses", "created_at", "updated_at",
    }  # fmt: skip
    assert documented <= set(trade)
    assert "trade_id" not in trade
    assert set(trade["account"]) >= {"id", "name", "currency"}
    narrow = live.state.issue_key(scopes=["read:trades"])
    slim = (await live.data("GET", f"/trades/{number}", key=narrow))["trade"]
    assert "screenshots" not in slim
    assert "protocol_responses" not in slim
    assert (await live.call("GET", "/emotions", key=narrow)).status_code == 200  # read:catalog


async def test_unbuilt_and_wrong_methods_answer_in_the_error_shape(live: Live) -> None:
    wrong = await live.call("PUT", "/accounts/1", json={}, headers=key())
    assert (wrong.status_code, err(wrong)["details"]["allowed"]) == (
        405,
        ["DELETE", "GET", "PATCH"],
    )
    missing = await live.call("GET", "/journal-entries")
    assert (missing.status_code, err(missing)["code"]) == (404, "not_found")
