"""Auto-sync connections, their log and the manual sync."""

from __future__ import annotations

import random
from typing import Any

from .. import _trades as T
from .._faults import SYNC_FAULT_KINDS
from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid
from .common import iso, listed, owned, page, path_int, require_pro

__all__ = ["get_connection", "list_connections", "sync_log", "trigger_sync"]

SCHEDULE = 15 * 60
COOLDOWN = 20


def _log_run(
    ctx: Ctx,
    conn: dict[str, Any],
    trigger: str,
    status: str,
    times: tuple[float, float],
    counts: tuple[int, int, int],
    errors: list[str],
    message: str,
) -> int:
    """Write one sync-log row (`counts`: imported, skipped, fetched); returns its id."""
    lid = ctx.store.next_id("synclog")
    imported, skipped, fetched = counts
    row = {
        "log_id": lid,
        "connection_id": conn["connection_id"],
        "broker_key": conn["broker_key"],
        "trigger": trigger,
        "status": status,
        "started_at": iso(times[0]),
        "finished_at": iso(times[1]),
        "imported": imported,
        "skipped": skipped,
        "total_fetched": fetched,
        "errors": errors,
        "message": message,
    }
    ctx.store.put("synclog", lid, ctx.uid, row)
    return lid


def _catch_up(ctx: Ctx, conn: dict[str, Any]) -> dict[str, Any]:
    """Scheduled syncs happen every 15 minutes; write the ones due since the last read."""
    due = conn["scheduled_until"]
    first = max(due + SCHEDULE, ctx.now - 24 * 3600)
    count = 0
    t = first
    while t <= ctx.now and count < 96:
        expired = conn["token_status"] == "expired"  # noqa: S105 - a status, not a secret
        # Every seventh slot (by wall-clock slot number) one fill cannot be matched.
        partial = not expired and int(t // SCHEDULE) % 7 == 3
        if expired:
            status, errors, message = (
                "failed",
                ["broker token expired; reconnect in settings"],
                "Token expired",
            )
        elif partial:
            status, errors, message = (
                "partial",
                ["1 fill could not be matched to an order; it will be retried next run"],
                "No new trades; 1 fill deferred",
            )
        else:
            status, errors, message = "success", [], "No new trades"
        _log_run(
            ctx,
            conn,
            "schedule",
            status,
            (t, t + 4),
            (0, 0 if expired else 3, 0 if expired else 3 + partial),
            errors,
            message,
        )
        if not expired:
            conn = {**conn, "last_sync_at": iso(t + 4)}
        due = t
        t += SCHEDULE
        count += 1
    if due != conn["scheduled_until"]:
        conn = {**conn, "scheduled_until": due}
        ctx.store.put("connection", conn["connection_id"], ctx.uid, conn)
    return conn


def _connection_out(ctx: Ctx, conn: dict[str, Any]) -> dict[str, Any]:
    account = ctx.store.get("account", conn["account_id"]) or {}
    return {
        "connection_id": conn["connection_id"],
        "broker_key": conn["broker_key"],
        "broker_name": conn["broker_name"],
        "account_id": conn["account_id"],
        "account_name": account.get("account_name"),
        "is_active": conn["is_active"],
        "status": conn["status"],
        "token_status": conn["token_status"],
        "last_sync_at": conn["last_sync_at"],
        "next_sync_at": iso(conn["scheduled_until"] + SCHEDULE),
    }


async def list_connections(ctx: Ctx) -> Result:
    conns = sorted(ctx.store.all("connection", ctx.uid), key=lambda c: c["connection_id"])
    chunk, meta = page(ctx, conns)
    rows = [_catch_up(ctx, c) for c in chunk]
    return Result(data={"connections": [_connection_out(ctx, c) for c in rows], **meta})


async def get_connection(ctx: Ctx) -> Result:
    conn = _catch_up(ctx, owned(ctx, "connection", path_int(ctx, "id"), "Connection"))
    return Result(data={"connection": _connection_out(ctx, conn)})


async def sync_log(ctx: Ctx) -> Result:
    for conn in ctx.store.all("connection", ctx.uid):
        _catch_up(ctx, conn)
    rows = sorted(ctx.store.all("synclog", ctx.uid), key=lambda r: -r["log_id"])
    if ctx.params.get("connection_id"):
        rows = [r for r in rows if str(r["connection_id"]) == ctx.params["connection_id"]]
    return listed(ctx, "log", rows, cap=200)


def _injected_failure(ctx: Ctx, conn: dict[str, Any]) -> None:
    """The broker_api_error / sync_failed faults, drawn once the gates have passed.

    A failed run still stamps the connection's cooldown (the gate stands before the broker
    is called); a broker error also leaves a `failed` manual row in the log, while a
    pipeline crash leaves none. Both answers are errors and are never cached for replays.
    """
    pipeline = ctx.state
    kind = next((k for k in SYNC_FAULT_KINDS if pipeline.faults.draw(k)), None)
    if kind is None:
        return
    pipeline.counters[kind] += 1
    ctx.store.put("connection", conn["connection_id"], ctx.uid, {**conn, "last_manual_at": ctx.now})
    if kind == "sync_failed":
        raise ApiError(
            500,
            "sync_failed",
            "The sync pipeline failed unexpectedly; retrying is safe.",
            keep_writes=True,
        )
    message = f"{conn['broker_name']} API returned an error; nothing was imported."
    lid = _log_run(
        ctx,
        conn,
        "manual",
        "failed",
        (ctx.now, ctx.now + 1),
        (0, 0, 0),
        [message],
        "Broker API error",
    )
    raise ApiError(
        502,
        "broker_api_error",
        f"The broker's API ({conn['broker_name']}) returned an error. Retry later.",
        {"connection_id": conn["connection_id"], "log_id": lid},
        keep_writes=True,
    )


def _may_sync_now(ctx: Ctx, conn: dict[str, Any]) -> None:
    """Refuse a manual sync the connection cannot run now: inactive, cooling down, or
    with an expired broker token."""
    if not conn["is_active"]:
        raise Invalid({"connection": "is inactive"})
    last = conn.get("last_manual_at")
    if last is not None and ctx.now - last < COOLDOWN:
        wait = max(1, int(COOLDOWN - (ctx.now - last) + 0.999))
        raise ApiError(
            429,
            "connection_sync_cooldown",
            f"This connection synced moments ago; try again in {wait} s.",
            {"retry_after_seconds": wait},
            {"Retry-After": str(wait), "X-RateLimit-Scope": "connection-sync"},
        )
    if conn["token_status"] == "expired":  # noqa: S105 - a status, not a secret
        raise ApiError(
            401,
            "token_expired",
            "The broker token expired and could not be refreshed; reconnect it in "
            "Settings -> Auto-Sync.",
        )


def _broker_trade(ctx: Ctx, conn: dict[str, Any], rng: random.Random, i: int) -> dict[str, Any]:
    """One trade the broker reports, stored as an import (with its two fills)."""
    body = {
        "account_id": conn["account_id"],
        "trade_date": iso(ctx.now - 600 * (i + 1)),
        "symbol": rng.choice(["MNQ", "MES"]),
        "direction": rng.choice(["long", "short"]),
        "quantity": 1,
        "multiplier": 2,
        "net_pnl": round(rng.uniform(-80, 120), 2),
        "fees": 1.24,
    }
    fills = [
        {"type": kind, "price": price, "quantity": 1, "execution_time": body["trade_date"]}
        for kind, price in (("entry", 21000.25), ("exit", 21010.5))
    ]
    trade: dict[str, Any] = T.store_trade(ctx.store, ctx.uid, body, ctx.now, executions=fills)
    return trade


async def trigger_sync(ctx: Ctx) -> Result:
    conn = _catch_up(ctx, owned(ctx, "connection", path_int(ctx, "id"), "Connection"))
    if ctx.body not in (None, {}):
        raise Invalid({"body": "this endpoint takes no body"})
    require_pro(ctx, "Manual sync needs the Pro plan.")
    _may_sync_now(ctx, conn)
    _injected_failure(ctx, conn)
    rng = random.Random(conn["connection_id"] * 1009 + conn["imports"])
    new = rng.choice([0, 1, 1, 2])
    imported = [_broker_trade(ctx, conn, rng, i) for i in range(new)]
    skipped = rng.randint(0, 3)
    lid = _log_run(
        ctx,
        conn,
        "manual",
        "success",
        (ctx.now, ctx.now + 2),
        (new, skipped, new + skipped),
        [],
        f"Imported {new} new trade(s)",
    )
    ctx.store.put(
        "connection",
        conn["connection_id"],
        ctx.uid,
        {
            **conn,
            "last_manual_at": ctx.now,
            "last_sync_at": iso(ctx.now),
            "imports": conn["imports"] + 1,
        },
    )
    return Result(
        data={
            "connection_id": conn["connection_id"],
            "log_id": lid,
            "imported": new,
            "skipped": skipped,
            "total_fetched": new + skipped,
            "total_trades": len(T.user_trades(ctx.store, ctx.uid)),
            "total_pnl": round(sum(t["net_pnl"] for t in imported), 2),
            "errors": [],
            "message": f"Imported {new} new trade(s), skipped {skipped} already journaled.",
        }
    )
