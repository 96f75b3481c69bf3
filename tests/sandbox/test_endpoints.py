"""Endpoint families, over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tradavity_mcp.sandbox import FREE_KEY

from .conftest import Live

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-11-17T14:31:00Z",
    "symbol": "MES",
    "direction": "short",
    "net_pnl": -20.5,
}
_n = iter(range(10_000))


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k{next(_n)}"}


async def _new_trade(live: Live, **extra: Any) -> int:
    resp = await live.call("POST", "/trades", json={**TRADE, **extra}, headers=key())
    assert resp.status_code == 201, resp.text
    return int(resp.json()["data"]["trade"]["trade_number"])


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


async def test_trade_list_filters_and_cursor(live: Live) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        resp = (await live.call("GET", "/trades", params=params)).json()
        seen += [t["trade_number"] for t in resp["data"]["trades"]]
        cursor = resp["meta"].get("next_cursor")
        if not resp["meta"]["has_more"]:
            break
    assert len(seen) == len(set(seen)) > 200
    row = (await live.call("GET", "/trades", params={"limit": 1})).json()["data"]["trades"][0]
    assert set(row) == {
        "trade_number",
        "trade_date",
        "symbol",
        "direction",
        "net_pnl",
        "account",
        "grade",
        "strategy",
        "setup",
        "top_tag",
        "is_copy",
    }
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
        ({"symbol": "mnq"}, lambda t: t["symbol"] == "MNQ"),
        ({"direction": "short"}, lambda t: t["direction"] == "short"),
        ({"account": "topstep xfa"}, lambda t: t["account"]["name"] == "Topstep XFA"),
        ({"grade": "A+"}, lambda t: t["grade"] == "A+"),
        ({"pnl_min": 100}, lambda t: t["net_pnl"] >= 100),
        ({"net_pnl_lte": -50}, lambda t: t["net_pnl"] <= -50),
        ({"is_copy": "true"}, lambda t: t["is_copy"]),
        ({"strategy": "Trend Pullback"}, lambda t: t["strategy"] == "Trend Pullback"),
        ({"outcome": "loss"}, lambda t: t["net_pnl"] < 0),
        (
            {"from": "2026-11-01", "to": "2026-11-10"},
            lambda t: "2026-11-01" <= t["trade_date"][:10] <= "2026-11-11",
        ),
    ]
    for params, check in cases:
        rows = (await live.call("GET", "/trades", params={**params, "limit": 200})).json()["data"][
            "trades"
        ]
        assert rows, params
        assert all(check(t) for t in rows), params
    bad = await live.call("GET", "/trades", params={"grade": "B+"})
    assert bad.json()["error"]["details"]["allowed"] == ["A+", "A", "B", "C", "F"]
    too_many = await live.call("GET", "/trades", params={"limit": 201})
    assert too_many.status_code == 400


async def test_create_patch_archive_with_copies(live: Live) -> None:
    number = await _new_trade(live, trade_quality_grade="B", strategy_id=1, setup_id=1)
    patched = await live.call(
        "PATCH",
        f"/trades/{number}",
        headers=key(),
        json={"trade_quality_grade": "A", "emotional_state": "calm", "sl_price": None},
    )
    data = patched.json()["data"]
    assert (data["trade"]["grade"], data["trade"]["emotional_state"]) == ("A", "calm")
    core = await live.call("PATCH", f"/trades/{number}", json={"symbol": "ES"}, headers=key())
    assert core.json()["error"]["details"]["fields"]["symbol"] == "is not a known field"
    gone = await live.call("DELETE", f"/trades/{number}", headers=key())
    assert (gone.status_code, gone.headers["x-trades-archived"]) == (204, "1")
    again = await live.call("DELETE", f"/trades/{number}", headers=key())
    assert again.status_code == 404
    copies = (await live.call("GET", "/trades", params={"is_copy": "true", "limit": 1})).json()[
        "data"
    ]["trades"][0]
    detail = (await live.call("GET", f"/trades/{copies['trade_number']}")).json()["data"]["trade"]
    source = detail["source_trade_number"]
    on_copy = await live.call(
        "DELETE",
        f"/trades/{copies['trade_number']}",
        params={"including_copies": "true"},
        headers=key(),
    )
    assert on_copy.status_code == 400
    cascade = await live.call(
        "DELETE", f"/trades/{source}", params={"including_copies": "true"}, headers=key()
    )
    assert cascade.headers["x-copies-archived"] == "1"


async def test_executions_confirmations_and_tags(live: Live) -> None:
    number = await _new_trade(live)
    fills = {
        "entries": [{"price": 6001.25, "quantity": 1, "execution_time": "2026-11-17T14:31:00Z"}],
        "exits": [{"price": "6000.5", "quantity": 1}],
    }
    put = await live.call("PUT", f"/trades/{number}/executions", json=fills, headers=key())
    rows = put.json()["data"]["executions"]
    assert [r["type"] for r in rows] == ["entry", "exit"]
    assert (await live.call("GET", f"/trades/{number}/executions")).json()["data"][
        "executions"
    ] == rows
    zero = await live.call(
        "PUT",
        f"/trades/{number}/executions",
        headers=key(),
        json={"entries": [{"price": 0, "quantity": 1}]},
    )
    assert "entries[0].price" in zero.json()["error"]["details"]["fields"]
    empty = await live.call("PUT", f"/trades/{number}/executions", json={}, headers=key())
    assert empty.status_code == 400
    strategy = (await live.call("GET", "/strategies/1")).json()["data"]["strategy"]
    confirmation = strategy["setups"][0]["confirmations"][0]["confirmation_id"]
    conf = await live.call(
        "PUT",
        f"/trades/{number}/confirmations",
        headers=key(),
        json={"confirmations": [{"confirmation_id": confirmation}]},
    )
    assert conf.json()["data"]["confirmations"][0]["was_present"] is True
    unknown = await live.call(
        "PUT",
        f"/trades/{number}/confirmations",
        headers=key(),
        json={"confirmations": [{"confirmation_id": 99999}]},
    )
    assert unknown.json()["error"]["details"]["unknown_confirmation_ids"] == [99999]
    tags = await live.call("PUT", f"/trades/{number}/tags", json={"tag_ids": [1, 2]}, headers=key())
    assert [t["tag_id"] for t in tags.json()["data"]["tags"]] == [1, 2]
    replaced = await live.call(
        "PUT", f"/trades/{number}/tags", json={"tag_ids": [3]}, headers=key()
    )
    assert [t["tag_id"] for t in replaced.json()["data"]["tags"]] == [3]


async def test_screenshots(live: Live) -> None:
    number = await _new_trade(live)
    png = _png()
    up = await live.call(
        "POST",
        f"/trades/{number}/screenshots",
        headers=key(),
        files={"file": ("c.png", png, "image/png")},
        data={"label": "Entry"},
    )
    meta = up.json()["data"]
    assert (up.status_code, meta["width"], meta["height"], meta["label"]) == (201, 40, 30, "Entry")
    listed = (await live.call("GET", f"/trades/{number}/screenshots")).json()["data"]["screenshots"]
    assert [s["screenshot_id"] for s in listed] == [meta["screenshot_id"]]
    raw = await live.call("GET", meta["download_url"].removeprefix("/api/v1"))
    assert (raw.content, raw.headers["content-type"]) == (png, "image/png")
    wrong = await live.call(
        "POST",
        f"/trades/{number}/screenshots",
        headers=key(),
        files={"file": ("c.gif", b"GIF89a", "image/gif")},
    )
    assert wrong.status_code == 400
    archived = await live.call(
        "DELETE", f"/trades/{number}/screenshots/{meta['screenshot_id']}", headers=key()
    )
    assert archived.status_code == 204
    free_trade = (await live.call("GET", "/trades", key=FREE_KEY)).json()["data"]["trades"][0]
    path = f"/trades/{free_trade['trade_number']}/screenshots"
    first = await live.call(
        "POST", path, key=FREE_KEY, headers=key(), files={"file": ("a.png", png, "image/png")}
    )
    assert first.status_code == 201
    capped = await live.call(
        "POST", path, key=FREE_KEY, headers=key(), files={"file": ("b.png", png, "image/png")}
    )
    err = capped.json()["error"]
    assert (capped.status_code, err["code"], err["details"]["limit"]) == (413, "limit_reached", 1)


async def test_tags_and_categories(live: Live) -> None:
    cat = await live.call("POST", "/tag-categories", json={"name": "Playbook"}, headers=key())
    cid = cat.json()["data"]["category"]["category_id"]
    dup = await live.call("POST", "/tag-categories", json={"name": "playbook"}, headers=key())
    assert dup.json()["error"]["code"] == "duplicate_name"
    tag = await live.call(
        "POST", "/tags", json={"category_id": cid, "name": "Gap Fill"}, headers=key()
    )
    tid = tag.json()["data"]["tag"]["tag_id"]
    assert tag.json()["data"]["tag"]["color"] == "#3b82f6"
    busy = await live.call("DELETE", f"/tag-categories/{cid}", headers=key())
    assert busy.json()["error"]["code"] == "category_has_tags"
    assert (await live.call("DELETE", f"/tags/{tid}", headers=key())).status_code == 204
    assert (await live.call("DELETE", f"/tag-categories/{cid}", headers=key())).status_code == 204
    mistakes = (await live.call("GET", "/tags", params={"type": "mistake"})).json()["data"]["tags"]
    assert mistakes
    assert all(t["type"] == "mistake" for t in mistakes)


async def test_protocol_responses_validation(live: Live) -> None:
    protocols = (await live.call("GET", "/protocols", params={"type": "pre_trade"})).json()["data"][
        "protocols"
    ]
    proto = (await live.call("GET", f"/protocols/{protocols[0]['protocol_id']}")).json()["data"][
        "protocol"
    ]
    items = {i["label"]: i["item_id"] for s in proto["sections"] for i in s["items"]}
    kinds = {i["item_id"]: i["item_type"] for s in proto["sections"] for i in s["items"]}
    assert set(kinds.values()) >= {"checkbox", "yes_no_na", "select", "rating", "number", "text"}
    path = f"/protocols/{proto['protocol_id']}/responses"
    number = await _new_trade(live)
    good = {
        str(items["Charts are loaded"]): "1",
        str(items["News in the next 30 minutes?"]): "no",
        str(items["Bias"]): "short",
        str(items["Conviction"]): 4,
    }
    ok = await live.call(
        "POST", path, json={"item_values": good, "trade_number": number}, headers=key()
    )
    assert ok.status_code == 201
    assert ok.json()["data"]["response"]["trade_number"] == number
    missing = await live.call(
        "POST", path, json={"item_values": {str(items["Bias"]): "long"}}, headers=key()
    )
    assert set(missing.json()["error"]["details"]["missing"]) >= {items["Charts are loaded"]}
    draft = await live.call(
        "POST",
        path,
        headers=key(),
        json={"item_values": {str(items["Bias"]): "long"}, "status": "draft"},
    )
    assert draft.status_code == 201
    bad = await live.call(
        "POST",
        path,
        headers=key(),
        json={
            "item_values": {
                **good,
                str(items["Conviction"]): 7,
                str(items["Risk in R"]): "lots",
                str(items["Bias"]): "sideways",
            }
        },
    )
    errors = bad.json()["error"]["details"]["item_value_errors"]
    assert set(errors) == {str(items["Conviction"]), str(items["Risk in R"]), str(items["Bias"])}
    foreign = await live.call("POST", path, json={"item_values": {"999999": "1"}}, headers=key())
    assert foreign.json()["error"]["details"]["unknown_item_ids"] == [999999]
    linked = (await live.call("GET", path, params={"trade_number": number})).json()["data"]
    assert linked["total_count"] == 1


async def test_accounts_and_catalog(live: Live) -> None:
    accounts = (await live.call("GET", "/accounts")).json()["data"]["accounts"]
    assert {a["account_name"] for a in accounts} == {"Apex 50K", "Topstep XFA", "Personal Live"}
    with_archived = (
        await live.call("GET", "/accounts", params={"include_archived": "true"})
    ).json()["data"]["accounts"]
    assert len(with_archived) == 4
    balance = await live.call("GET", "/accounts/1/balance")
    assert balance.json()["data"]["balance"]["starting_balance"] == 50000
    assert (await live.call("GET", "/accounts/2/balance")).status_code == 404
    instruments = (await live.call("GET", "/instruments")).json()["data"]
    assert 60 <= instruments["total_count"] <= 80
    assert (await live.call("GET", "/instruments", params={"asset_type": "stocks"})).json()["data"][
        "instruments"
    ] == []
    presets = await live.call("GET", "/prop-firm-presets", params={"firm_key": "nope"})
    assert "topstep" in presets.json()["error"]["details"]["allowed"]
    for path in ("/brokers", "/scopes", "/emotions", "/usage", "/prop-firm-presets/1"):
        assert (await live.call("GET", path)).status_code == 200, path


async def test_stats_totals_decisions_and_breakeven(live: Live) -> None:
    summary = (await live.call("GET", "/stats/summary", params={"range": "90d"})).json()["data"]
    assert summary["totals"]["trade_rows"] > summary["decisions"]["count"]  # copies count once
    d = summary["decisions"]
    assert d["wins"] + d["losses"] + d["breakevens"] == d["count"]
    assert summary["breakeven_offset"] == {"low": -5.0, "high": 5.0}  # first active account
    topstep = (
        await live.call("GET", "/stats/summary", params={"range": "90d", "account": "2"})
    ).json()["data"]
    assert topstep["breakeven_offset"] == {"low": -2.0, "high": 2.0}
    by_symbol = (await live.call("GET", "/stats/by-symbol", params={"range": "90d"})).json()["data"]
    assert sum(r["count"] for r in by_symbol["rows"]) == d["count"]
    by_strategy = (await live.call("GET", "/stats/by-strategy", params={"range": "90d"})).json()[
        "data"
    ]
    assert "(no strategy)" in {r["strategy"] for r in by_strategy["rows"]}
    bad = await live.call("GET", "/stats/summary", params={"range": "decade"})
    assert "allowed" in bad.json()["error"]["details"]


async def test_calendar_groups_in_the_user_timezone(live: Live) -> None:
    # 03:00 UTC on the 17th is the evening of the 16th in New York.
    await _new_trade(live, trade_date="2026-11-17T03:00:00Z", net_pnl=1234.5, symbol="GC")
    cal = (
        await live.call("GET", "/calendar", params={"from": "2026-11-16", "to": "2026-11-16"})
    ).json()["data"]
    assert cal["summary"]["timezone"] == "America/New_York"
    assert [d["date"] for d in cal["days"]] == ["2026-11-16"]
    assert cal["days"][0]["net_pnl"] >= 1234.5
    needs = await live.call("GET", "/calendar")
    assert needs.status_code == 400
    month = (await live.call("GET", "/calendar", params={"range": "mtd"})).json()["data"]
    s = month["summary"]
    assert s["winning_days"] + s["losing_days"] + s["flat_days"] == s["traded_days"]


async def test_autosync_cooldown_token_and_plan(live: Live) -> None:
    conns = (await live.call("GET", "/autosync/connections")).json()["data"]["connections"]
    active = next(c for c in conns if c["token_status"] == "valid")
    expired = next(c for c in conns if c["token_status"] == "expired")
    path = f"/autosync/connections/{active['connection_id']}/sync"
    first = await live.call("POST", path, headers=key())
    data = first.json()["data"]
    assert set(data) >= {
        "connection_id",
        "log_id",
        "imported",
        "skipped",
        "total_fetched",
        "total_trades",
        "total_pnl",
        "errors",
        "message",
    }
    live.clock.advance(8)
    cool = await live.call("POST", path, headers=key())
    err = cool.json()["error"]
    assert (cool.status_code, err["code"]) == (429, "connection_sync_cooldown")
    assert cool.headers["retry-after"] == "12"
    assert cool.headers["x-ratelimit-scope"] == "connection-sync"
    assert err["details"]["retry_after_seconds"] == 12
    live.clock.advance(12)
    assert (await live.call("POST", path, headers=key())).status_code == 200
    token = await live.call(
        "POST", f"/autosync/connections/{expired['connection_id']}/sync", headers=key()
    )
    assert (token.status_code, token.json()["error"]["code"]) == (401, "token_expired")
    free_conn = (await live.call("GET", "/autosync/connections", key=FREE_KEY)).json()["data"][
        "connections"
    ][0]
    plan = await live.call(
        "POST",
        f"/autosync/connections/{free_conn['connection_id']}/sync",
        key=FREE_KEY,
        headers=key(),
    )
    assert (plan.status_code, plan.json()["error"]["code"]) == (429, "limit_reached")
    live.clock.advance(31 * 60)
    log = (await live.call("GET", "/autosync/log", params={"limit": 200})).json()["data"]["log"]
    triggers = {row["trigger"] for row in log}
    assert triggers == {"manual", "schedule"}
    assert any(
        r["status"] == "failed" for r in log if r["connection_id"] == expired["connection_id"]
    )


async def test_scheduled_syncs_appear_lazily_every_15_minutes(live: Live) -> None:
    before = (await live.call("GET", "/autosync/log", params={"connection_id": 1})).json()["data"]
    assert before["log"] == []  # the first slot is eight minutes away
    conn = (await live.call("GET", "/autosync/connections/1")).json()["data"]["connection"]
    live.clock.advance(3 * 3600)
    rows = (
        await live.call("GET", "/autosync/log", params={"connection_id": 1, "limit": 50})
    ).json()["data"]["log"]
    assert len(rows) == 12
    assert {r["trigger"] for r in rows} == {"schedule"}
    assert rows[-1]["started_at"] == conn["next_sync_at"]
    assert {r["status"] for r in rows} == {"success", "partial"}
    assert all(r["errors"] for r in rows if r["status"] == "partial")
    later = (await live.call("GET", "/autosync/connections/1")).json()["data"]["connection"]
    assert later["last_sync_at"] > conn["next_sync_at"]
