"""Conventions: envelope, auth, scopes, rate limits, idempotency, validation quirks."""

from __future__ import annotations

import re
from typing import Any

import anyio
import httpx2
import pytest

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    EXPIRED_KEY,
    FREE_KEY,
    READONLY_KEY,
    REVOKED_KEY,
)

from .conftest import Live

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-11-17T14:31:00Z",
    "symbol": "mnq",
    "direction": "long",
    "net_pnl": 48,
}


def _error(resp: httpx2.Response) -> dict[str, Any]:
    body = resp.json()
    assert body["ok"] is False
    assert re.fullmatch(r"req_[0-9a-f]{16}", body["meta"]["request_id"])
    return dict(body["error"])


async def test_envelope_and_rate_limit_meta(live: Live) -> None:
    resp = await live.call("GET", "/me")
    body = resp.json()
    assert body["ok"] is True
    assert re.fullmatch(r"req_[0-9a-f]{16}", body["meta"]["request_id"])
    rate = body["meta"]["rate_limit"]
    assert rate["tier"] == "pro"
    assert (rate["limit"], rate["remaining"], rate["user_ceiling"]) == (300, 299, 900)
    assert resp.headers["x-ratelimit-limit"] == "300"
    assert resp.headers["x-ratelimit-remaining"] == "299"
    assert int(resp.headers["x-ratelimit-reset"]) == int(live.clock.now()) + 60
    assert body["data"]["preferences"]["timezone"] == "America/New_York"
    assert "write:trades" in body["data"]["key"]["scopes"]


async def test_auth_variants(live: Live) -> None:
    assert (await live.call("GET", "/me")).status_code == 200
    by_header = await live.http.get(live.base + "/me", headers={"X-API-Key": DEMO_KEY})
    assert by_header.status_code == 200
    missing = await live.http.get(live.base + "/me")
    assert (missing.status_code, _error(missing)["code"]) == (401, "unauthorized")
    wrong = await live.call("GET", "/me", key="tvty_" + "9" * 48)
    assert (wrong.status_code, _error(wrong)["code"]) == (401, "unauthorized")
    query = await live.http.get(live.base + "/me", params={"api_key": DEMO_KEY})
    assert query.status_code == 401
    assert "query string" in _error(query)["message"]
    revoked = await live.call("GET", "/me", key=REVOKED_KEY)
    assert (revoked.status_code, _error(revoked)["code"]) == (401, "key_revoked")
    expired = await live.call("GET", "/me", key=EXPIRED_KEY)
    assert (expired.status_code, _error(expired)["code"]) == (401, "key_expired")


async def test_scopes(live: Live) -> None:
    assert (await live.call("GET", "/trades", key=READONLY_KEY)).status_code == 200
    resp = await live.call(
        "POST", "/trades", key=READONLY_KEY, json=TRADE, headers={"Idempotency-Key": "s1"}
    )
    err = _error(resp)
    assert (resp.status_code, err["code"]) == (403, "forbidden_scope")
    assert err["details"]["required_scope"] == "write:trades"


async def test_per_key_window_and_retry_after(live: Live) -> None:
    for i in range(60):
        # 4xx answers count too: every fifth request is a 404.
        path = "/trades/999999" if i % 5 == 0 else "/me"
        resp = await live.call("GET", path, key=FREE_KEY)
        assert resp.status_code in {200, 404}
        if i == 29:
            live.clock.advance(10)  # the second half lands 10 s later
    limited = await live.call("GET", "/me", key=FREE_KEY)
    err = _error(limited)
    assert (limited.status_code, err["code"]) == (429, "rate_limited")
    assert limited.headers["x-ratelimit-scope"] == "key"
    # One slot frees when the oldest request ages out: 60 s after it, 10 s before the rest.
    assert limited.headers["retry-after"] == "50"
    live.clock.advance(50)
    assert (await live.call("GET", "/me", key=FREE_KEY)).status_code == 200
    again = await live.call("GET", "/me", key=FREE_KEY)
    assert again.status_code == 200  # 30 slots aged out at once
    live.clock.advance(10)
    fresh = await live.call("GET", "/me", key=FREE_KEY)
    assert int(fresh.headers["x-ratelimit-remaining"]) > 0


async def test_pre_auth_ip_window(live: Live) -> None:
    for _ in range(100):
        assert (await live.call("GET", "/me", key="tvty_" + "1" * 48)).status_code == 401
    blocked = await live.call("GET", "/me", key="tvty_" + "1" * 48)
    assert blocked.status_code == 429
    assert blocked.headers["x-ratelimit-scope"] == "ip-preauth"


async def test_idempotent_replay_conflict_and_expiry(live: Live) -> None:
    headers = {"Idempotency-Key": "trade-1"}
    first = await live.call("POST", "/trades", json=TRADE, headers=headers)
    assert first.status_code == 201
    again = await live.call(
        "POST", "/trades", json=dict(reversed(list(TRADE.items()))), headers=headers
    )
    assert again.status_code == 201
    assert again.headers["x-idempotent-replay"] == "true"
    assert again.json()["data"] == first.json()["data"]
    conflict = await live.call("POST", "/trades", json={**TRADE, "net_pnl": 49}, headers=headers)
    assert (conflict.status_code, _error(conflict)["code"]) == (409, "idempotency_conflict")
    live.clock.advance(24 * 3600 + 1)
    later = await live.call("POST", "/trades", json=TRADE, headers=headers)
    assert later.status_code == 201
    assert "x-idempotent-replay" not in later.headers
    numbers = {r.json()["data"]["trade"]["trade_number"] for r in (first, later)}
    assert len(numbers) == 2
    bad = await live.call("POST", "/trades", json=TRADE, headers={"Idempotency-Key": "no spaces"})
    assert bad.status_code == 400


async def test_five_parallel_identical_posts_make_one_row(live: Live) -> None:
    before = len(
        (await live.call("GET", "/trades", params={"limit": 200, "symbol": "ZN"})).json()["data"][
            "trades"
        ]
    )
    results: list[httpx2.Response] = []

    async def post() -> None:
        results.append(
            await live.call(
                "POST",
                "/trades",
                json={**TRADE, "symbol": "ZN"},
                headers={"Idempotency-Key": "par"},
            )
        )

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(post)
    assert [r.status_code for r in results] == [201] * 5
    assert len({r.json()["data"]["trade"]["trade_number"] for r in results}) == 1
    assert sum(r.headers.get("x-idempotent-replay") == "true" for r in results) == 4
    after = (await live.call("GET", "/trades", params={"limit": 200, "symbol": "ZN"})).json()[
        "data"
    ]["trades"]
    assert len(after) == before + 1


async def test_validation_quirks(live: Live) -> None:
    resp = await live.call(
        "POST",
        "/trades",
        headers={"Idempotency-Key": "q1"},
        json={
            **TRADE,
            "quantity": "2",
            "trade_quality_grade": "A+",
            "general_notes": "clean\u0000 break",
        },
    )
    trade = resp.json()["data"]["trade"]
    assert (trade["symbol"], trade["quantity"], trade["grade"]) == ("MNQ", 2.0, "A+")
    assert "trade_quality_grade" not in trade
    assert trade["general_notes"] == "clean break"
    before = live.state.counters["validation_error"]
    unknown = await live.call(
        "POST", "/trades", json={**TRADE, "colour": "red"}, headers={"Idempotency-Key": "q2"}
    )
    assert _error(unknown)["details"]["fields"] == {"colour": "is not a known field"}
    bad_number = await live.call(
        "POST", "/trades", json={**TRADE, "quantity": "abc"}, headers={"Idempotency-Key": "q3"}
    )
    assert "quantity" in _error(bad_number)["details"]["fields"]
    enum = await live.call(
        "POST", "/trades", json={**TRADE, "direction": "up"}, headers={"Idempotency-Key": "q4"}
    )
    assert "direction" in _error(enum)["details"]["fields"]
    future = await live.call(
        "POST",
        "/trades",
        json={**TRADE, "trade_date": "2027-01-01"},
        headers={"Idempotency-Key": "q5"},
    )
    assert "trade_date" in _error(future)["details"]["fields"]
    assert live.state.counters["validation_error"] == before + 4


async def test_other_users_ids_are_not_found(live: Live) -> None:
    mine = await live.call("GET", "/accounts/1")
    assert mine.status_code == 200
    theirs = await live.call("GET", "/accounts/1", key=FREE_KEY)
    assert (theirs.status_code, _error(theirs)["code"]) == (404, "not_found")
    tag = (await live.call("GET", "/tags")).json()["data"]["tags"][0]["tag_id"]
    free_trade = (await live.call("GET", "/trades", key=FREE_KEY)).json()["data"]["trades"][0]
    put = await live.call(
        "PUT",
        f"/trades/{free_trade['trade_number']}/tags",
        key=FREE_KEY,
        json={"tag_ids": [tag]},
        headers={"Idempotency-Key": "t"},
    )
    assert _error(put)["details"]["unknown_tag_ids"] == [tag]


async def test_method_not_allowed_unknown_path_and_body_cap(live: Live) -> None:
    wrong = await live.call("POST", "/me", headers={"Idempotency-Key": "m"})
    err = _error(wrong)
    assert (wrong.status_code, err["code"]) == (405, "method_not_allowed")
    assert err["details"]["allowed"] == ["GET"]
    nowhere = await live.call("GET", "/journal-entries")
    assert (nowhere.status_code, _error(nowhere)["code"]) == (404, "not_found")
    huge = await live.call(
        "POST",
        "/trades",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={"Idempotency-Key": "big", "Content-Type": "application/json"},
    )
    assert (huge.status_code, _error(huge)["code"]) == (413, "request_too_large")
