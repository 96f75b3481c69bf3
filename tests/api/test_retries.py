"""The one retry loop: what is retried, what is not, and that one write keeps one key."""

from __future__ import annotations

import httpx2
import pytest

from tradavity_mcp.api import errors
from tradavity_mcp.api.client import RetryPolicy
from tradavity_mcp.api.clock import FakeClock

from ._scripted import Script, fail, make_client, ok

pytestmark = pytest.mark.anyio

TRADE = {
    "account_id": 1,
    "trade_date": "2026-05-10T14:32:00Z",
    "symbol": "mnq",
    "direction": "long",
    "net_pnl": 48,
}
CREATED = ok({"trade": {"trade_number": 7, "symbol": "MNQ"}}, status=201)


async def test_one_key_across_every_retry_of_a_write() -> None:
    script = Script(
        httpx2.RemoteProtocolError("peer closed connection without sending complete body"),
        fail(503, "deadlock_retry", headers={"Retry-After": "1"}),
        fail(500, "internal_error"),
        httpx2.ReadTimeout("timed out"),
        CREATED,
    )
    async with make_client(script) as api:
        trade = await api.create_trade(TRADE, idempotency_key="tm1_write-1")
    assert trade.trade_number == 7
    assert script.keys == ["tm1_write-1"] * 5
    # Every attempt sent the very same body, so the API can replay instead of conflicting.
    bodies = script.bodies()
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["symbol"] == "MNQ"


RETRYABLE = [
    pytest.param(fail(429, "rate_limited", headers={"Retry-After": "2"}), id="429 rate_limited"),
    pytest.param(fail(503, "deadlock_retry", headers={"Retry-After": "1"}), id="503 deadlock"),
    pytest.param(fail(500, "internal_error"), id="500 internal_error"),
    pytest.param(fail(500, "sync_failed"), id="500 sync_failed"),
    pytest.param(fail(502, "broker_api_error"), id="502 broker_api_error"),
    pytest.param(httpx2.Response(502, text="<html>bad gateway</html>"), id="502 without envelope"),
    pytest.param(httpx2.ConnectError("refused"), id="connect error"),
    pytest.param(httpx2.ReadError("reset"), id="read error"),
    pytest.param(httpx2.RemoteProtocolError("dropped"), id="dropped after send"),
]


@pytest.mark.parametrize("first", RETRYABLE)
async def test_retryable_failures_are_retried(first: httpx2.Response | Exception) -> None:
    script = Script(first, ok({"connection_id": 3, "imported": 2}))
    async with make_client(script) as api:
        result = await api.trigger_sync(3, idempotency_key="k")
    assert result.imported == 2
    assert len(script.requests) == 2


NON_RETRYABLE = [
    (400, "validation_error", errors.ValidationFailed),
    (401, "unauthorized", errors.Unauthorized),
    (401, "key_revoked", errors.KeyRevoked),
    (401, "key_expired", errors.KeyExpired),
    (401, "token_expired", errors.TokenExpired),
    (403, "forbidden_scope", errors.ForbiddenScope),
    (404, "not_found", errors.NotFound),
    (405, "method_not_allowed", errors.MethodNotAllowed),
    (409, "idempotency_conflict", errors.IdempotencyConflict),
    (409, "duplicate_name", errors.DuplicateName),
    (409, "category_has_tags", errors.CategoryHasTags),
    (409, "conflict", errors.Conflict),
    (413, "request_too_large", errors.RequestTooLarge),
    (413, "limit_reached", errors.LimitReached),
    (429, "limit_reached", errors.LimitReached),
    (429, "connection_sync_cooldown", errors.ConnectionSyncCooldown),
]


@pytest.mark.parametrize(("status", "code", "cls"), NON_RETRYABLE)
async def test_non_retryable_errors_are_raised_at_once(
    status: int, code: str, cls: type[errors.APIStatusError]
) -> None:
    script = Script(fail(status, code, "refused", {"hint": 1}), CREATED)
    async with make_client(script) as api:
        with pytest.raises(cls) as info:
            await api.create_trade(TRADE, idempotency_key="k")
    assert len(script.requests) == 1
    assert type(info.value) is cls


ALL_CODES = [
    *NON_RETRYABLE,
    (429, "rate_limited", errors.RateLimited),
    (500, "internal_error", errors.InternalError),
    (500, "sync_failed", errors.SyncFailed),
    (502, "broker_api_error", errors.BrokerAPIError),
    (503, "deadlock_retry", errors.DeadlockRetry),
]


@pytest.mark.parametrize(("status", "code", "cls"), ALL_CODES)
async def test_every_documented_code_maps_to_its_typed_error(
    status: int, code: str, cls: type[errors.APIStatusError]
) -> None:
    answer = fail(status, code, "what went wrong", {"fields": {"x": "bad"}})
    request_id = answer.json()["meta"]["request_id"]
    script = Script(answer)
    async with make_client(script, retry=RetryPolicy(max_attempts=1)) as api:
        with pytest.raises(errors.APIStatusError) as info:
            await api.me()
    err = info.value
    assert type(err) is cls
    assert isinstance(err, errors.TradavityError)
    assert (err.status, err.error_code, err.message) == (status, code, "what went wrong")
    assert err.details["fields"] == {"x": "bad"}
    assert err.request_id == request_id
    assert request_id in str(err)


async def test_unknown_code_falls_back_to_the_status_class() -> None:
    script = Script(fail(404, "brand_new_code"))
    async with make_client(script) as api:
        with pytest.raises(errors.NotFound) as info:
            await api.me()
    assert info.value.error_code == "brand_new_code"


SYNC_ERRORS = [
    pytest.param(500, "sync_failed", errors.SyncFailed, id="500 sync_failed"),
    pytest.param(502, "broker_api_error", errors.BrokerAPIError, id="502 broker_api_error"),
]


@pytest.mark.parametrize(("status", "code", "cls"), SYNC_ERRORS)
async def test_a_sync_error_is_retried_once_then_raised(
    status: int, code: str, cls: type[errors.APIStatusError]
) -> None:
    clock = FakeClock()
    script = Script(fail(status, code), fail(status, code), ok({"connection_id": 3}))
    async with make_client(script, clock=clock) as api:
        with pytest.raises(cls) as info:
            await api.trigger_sync(3, idempotency_key="k")
    assert len(script.requests) == 2
    assert script.keys == ["k", "k"]
    assert len(clock.sleeps) == 1
    assert not info.value.retryable  # final: nothing to keep pending and re-send later


@pytest.mark.parametrize(("status", "code", "cls"), SYNC_ERRORS)
async def test_the_one_sync_retry_can_succeed(
    status: int, code: str, cls: type[errors.APIStatusError]
) -> None:
    script = Script(fail(status, code), ok({"connection_id": 3, "imported": 1}))
    async with make_client(script) as api:
        result = await api.trigger_sync(3, idempotency_key="k")
    assert result.imported == 1
    assert len(script.requests) == 2


async def test_a_sync_retry_that_meets_the_cooldown_raises_the_sync_error() -> None:
    cooldown = fail(
        429,
        "connection_sync_cooldown",
        details={"retry_after_seconds": 19},
        headers={"Retry-After": "19", "X-RateLimit-Scope": "connection-sync"},
    )
    script = Script(fail(502, "broker_api_error", "broker down"), cooldown, ok({}))
    async with make_client(script) as api:
        with pytest.raises(errors.BrokerAPIError) as info:
            await api.trigger_sync(3, idempotency_key="k")
    assert len(script.requests) == 2
    assert info.value.message == "broker down"
    assert info.value.retry_after == 19


async def test_sync_retries_can_be_turned_off() -> None:
    script = Script(fail(502, "broker_api_error"), ok({"connection_id": 3}))
    policy = RetryPolicy(sync_error_retries=0)
    async with make_client(script, retry=policy) as api:
        with pytest.raises(errors.BrokerAPIError):
            await api.trigger_sync(3, idempotency_key="k")
    assert len(script.requests) == 1


async def test_a_plain_cooldown_is_still_a_cooldown() -> None:
    cooldown = fail(429, "connection_sync_cooldown", details={"retry_after_seconds": 5})
    script = Script(cooldown, ok({}))
    async with make_client(script) as api:
        with pytest.raises(errors.ConnectionSyncCooldown):
            await api.trigger_sync(3, idempotency_key="k")
    assert len(script.requests) == 1


async def test_typed_error_details_are_exposed() -> None:
    cooldown = fail(
        429,
        "connection_sync_cooldown",
        details={"retry_after_seconds": 13},
        headers={"Retry-After": "13", "X-RateLimit-Scope": "connection-sync"},
    )
    scope = fail(403, "forbidden_scope", details={"required_scope": "write:autosync"})
    async with make_client(Script(cooldown, scope)) as api:
        with pytest.raises(errors.ConnectionSyncCooldown) as c:
            await api.trigger_sync(1, idempotency_key="a")
        with pytest.raises(errors.ForbiddenScope) as f:
            await api.trigger_sync(1, idempotency_key="b")
    assert c.value.retry_after_seconds == 13
    assert f.value.required_scope == "write:autosync"


async def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    script = Script(fail(429, "rate_limited", headers={"Retry-After": "7"}), ok({"user": {}}))
    async with make_client(script, clock=clock) as api:
        await api.me()
    assert clock.sleeps == [7]
    assert len(script.requests) == 2


async def test_retry_after_beyond_the_cap_is_not_waited_out() -> None:
    clock = FakeClock()
    daily = fail(
        429, "rate_limited", headers={"Retry-After": "3600", "X-RateLimit-Scope": "key-daily"}
    )
    script = Script(daily, ok({}))
    async with make_client(script, clock=clock, retry=RetryPolicy(max_retry_after=60)) as api:
        with pytest.raises(errors.RateLimited) as info:
            await api.me()
    assert clock.sleeps == []
    assert len(script.requests) == 1
    assert info.value.retry_after == 3600
    assert info.value.scope == "key-daily"


async def test_backoff_is_exponential_capped_and_jittered() -> None:
    clock = FakeClock(jitter=1.0)
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=3.0)
    script = Script(httpx2.ReadError("reset"))
    async with make_client(script, clock=clock, retry=policy) as api:
        with pytest.raises(errors.APIConnectionError):
            await api.me()
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(3, 0.0) == 1.0  # equal jitter: never below half the ceiling


async def test_a_write_that_may_have_landed_is_reported_as_unknown() -> None:
    script = Script(httpx2.RemoteProtocolError("dropped"))
    async with make_client(script, retry=RetryPolicy(max_attempts=3)) as api:
        with pytest.raises(errors.APIConnectionError) as info:
            await api.create_trade(TRADE, idempotency_key="k")
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 3
    assert script.keys == ["k", "k", "k"]


async def test_a_write_that_never_connected_is_known_not_applied() -> None:
    script = Script(httpx2.ConnectError("refused"))
    async with make_client(script, retry=RetryPolicy(max_attempts=2)) as api:
        with pytest.raises(errors.APIConnectionError) as info:
            await api.create_trade(TRADE, idempotency_key="k")
    assert info.value.outcome_unknown is False


async def test_replay_header_is_surfaced() -> None:
    script = Script(ok({"trade": {"trade_number": 1}}, 201, {"X-Idempotent-Replay": "true"}))
    async with make_client(script) as api:
        resp = await api.request("POST", "/trades", json=TRADE, idempotency_key="k")
    assert resp.replayed is True
    assert resp.status == 201


async def test_writes_without_a_valid_key_are_refused_before_sending() -> None:
    script = Script(CREATED)
    async with make_client(script) as api:
        with pytest.raises(ValueError, match="Idempotency-Key"):
            await api.request("POST", "/trades", json=TRADE)
        with pytest.raises(ValueError, match="Idempotency-Key"):
            await api.request("POST", "/trades", json=TRADE, idempotency_key="has space")
    assert script.requests == []


async def test_a_request_that_cannot_be_built_is_refused_locally() -> None:
    script = Script(ok({}))
    async with make_client(script) as api:
        with pytest.raises(errors.RequestInvalid, match="too long"):
            await api.list_trades(symbol="x" * 70_000)
    assert script.requests == []


async def test_an_error_replayed_under_the_key_is_not_retried_again() -> None:
    """The same request id twice under one Idempotency-Key is the API's replay cache: a
    third try would replay it again, so the error goes to the caller marked `replayed`."""
    cached = fail(500, "internal_error")
    again = httpx2.Response(500, json=cached.json())
    script = Script(cached, again, CREATED)
    async with make_client(script) as api:
        with pytest.raises(errors.InternalError) as info:
            await api.create_trade(TRADE, idempotency_key="tm1_cached-1")
    assert info.value.replayed
    assert len(script.keys) == 2
    header = fail(500, "internal_error", headers={"X-Idempotent-Replay": "true"})
    script = Script(header, CREATED)
    async with make_client(script) as api:
        with pytest.raises(errors.InternalError) as info:
            await api.create_trade(TRADE, idempotency_key="tm1_cached-2")
    assert info.value.replayed
    assert len(script.keys) == 1
    # A read has no key: the same id twice is not taken for a replay.
    script = Script(cached, httpx2.Response(500, json=cached.json()), ok({"user": {}}))
    async with make_client(script) as api:
        await api.me()
