"""Manual broker sync: the 20 s cooldown as an answer, not an error, and an optional wait.

A broker that fails (502 `broker_api_error`) or a sync pipeline that crashes (500
`sync_failed`) is tried once more by the API client, never more: the reference says to
retry later. The run is then recorded as failed (the connection shows `errored` in
`sync_status`) and the tool answers that the broker failed and to try again in a few
minutes.

Replicas sharing Redis share the cooldown too: a manual sync is sent only after the
workspace's monitor lets it claim the connection (`claim_manual`), so two replicas never
both send one inside the 20 s; the one that may not is answered like the API's refusal.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import anyio

from ...api.errors import BrokerAPIError, ConnectionSyncCooldown, SyncFailed, TokenExpired
from ...api.models import AutosyncConnection
from ..errors import StepFailed, UserError, describe_error
from ..workspace import Workspace
from ..writes.call import NotYet, Pending, WriteCall

__all__ = ["MAX_WAIT_SECONDS", "trigger_sync"]

#: `wait=true` waits out at most this long in total (a cooldown is 20 s).
MAX_WAIT_SECONDS = 60.0
#: What to do after a failed broker sync.
BROKER_RETRY = "try again in a few minutes"

Progress = Callable[[float, float, str], Awaitable[None]]


async def trigger_sync(
    ws: Workspace,
    call: WriteCall,
    connection: str | int | None,
    *,
    wait: bool,
    progress: Progress | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> dict[str, Any]:
    conn = await ws.ref.connection(connection)
    broker = conn.broker_name or conn.broker_key
    run_id = ws.sync.start_manual(conn.connection_id, broker)
    try:
        return await _sync_run(ws, call, conn, broker, run_id, wait, progress, sleep)
    except anyio.get_cancelled_exc_class():
        ws.sync.cancelled(run_id)
        raise
    finally:
        # The answer leaves once the run's events can be read on every replica (or the
        # shared store has had its moment: they follow as soon as it answers).
        with anyio.CancelScope(shield=True):
            await ws.sync.flush()


async def _sync_run(
    ws: Workspace,
    call: WriteCall,
    conn: AutosyncConnection,
    broker: str | None,
    run_id: str,
    wait: bool,
    progress: Progress | None,
    sleep: Callable[[float], Awaitable[None]],
) -> dict[str, Any]:
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        # A cooldown refusal is not a write: each new try gets its own step (and key).
        step = "sync" if attempt == 1 else f"sync#{attempt}"

        async def send(key: str) -> dict[str, Any]:
            left = await ws.sync.claim_manual(run_id)
            if left > 0:
                raise _cooldown(conn, left)
            result = await ws.api.trigger_sync(conn.connection_id, idempotency_key=key)
            return result.model_dump(mode="json")

        ws.sync.started(run_id)
        try:
            data: dict[str, Any] = await call.step(step, send)
            break
        except Pending as exc:
            ws.sync.failed(run_id, exc.reason, retry="check sync history in a moment")
            raise
        except StepFailed as exc:
            retry_after = _cooldown_or_raise(ws, conn, broker, run_id, exc)
            ws.sync.cooling_down(run_id, retry_after)
            if not wait or waited + retry_after > MAX_WAIT_SECONDS:
                ws.sync.cancelled(run_id)
                raise NotYet("cooling_down", _cooling(conn, broker, run_id, retry_after)) from None
            await _wait(retry_after, progress, sleep)
            waited += retry_after
    return _completed(ws, conn, broker, run_id, data)


def _cooldown_or_raise(
    ws: Workspace,
    conn: AutosyncConnection,
    broker: str | None,
    run_id: str,
    exc: StepFailed,
) -> float:
    """The seconds a cooldown asks to wait; any other failure ends the run, said plainly."""
    if isinstance(exc.error, ConnectionSyncCooldown):
        return float(math.ceil(exc.error.retry_after_seconds))
    if isinstance(exc.error, BrokerAPIError | SyncFailed):
        _broker_failed(ws, conn, broker, run_id, exc.error)
    message = describe_error(exc, subject=f"connection {conn.connection_id}")
    retry = (
        "reconnect the broker in Tradavity Settings -> Auto-Sync"
        if isinstance(exc.error, TokenExpired)
        else None
    )
    ws.sync.failed(run_id, message, retry=retry)
    raise UserError(message) from None


def _cooldown(conn: AutosyncConnection, left: float) -> ConnectionSyncCooldown:
    """Another replica synced this connection moments ago: the refusal the API would give."""
    seconds = float(math.ceil(left))
    return ConnectionSyncCooldown(
        f"connection {conn.connection_id} synced moments ago (shared cooldown)",
        status=429,
        code=ConnectionSyncCooldown.code,
        details={"retry_after_seconds": seconds},
        retry_after=seconds,
    )


def _cooling(
    conn: AutosyncConnection, broker: str | None, run_id: str, retry_after: float
) -> dict[str, Any]:
    return {
        "connection_id": conn.connection_id,
        "broker": broker,
        "retry_after_seconds": retry_after,
        "run_id": run_id,
        "message": (
            f"{broker} synced moments ago; Tradavity allows one manual sync per "
            f"connection every 20 s. Try again in {retry_after:.0f} s "
            "(or call with wait=true)."
        ),
    }


def _completed(
    ws: Workspace, conn: AutosyncConnection, broker: str | None, run_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    errors = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in data["errors"]]
    ws.sync.completed(run_id, {**data, "errors": errors})
    ws.ref.invalidate("connections")
    return {
        "run_id": run_id,
        "connection_id": conn.connection_id,
        "broker": broker,
        "imported": data.get("imported", 0),
        "skipped": data.get("skipped", 0),
        "total_fetched": data.get("total_fetched", 0),
        "total_trades": data.get("total_trades"),
        "total_pnl": data.get("total_pnl"),
        "errors": errors,
        "message": data.get("message"),
    }


def _broker_failed(
    ws: Workspace,
    conn: AutosyncConnection,
    broker: str | None,
    run_id: str,
    error: BrokerAPIError | SyncFailed,
) -> NoReturn:
    """Record the run as failed and answer "try again in a few minutes" (no more retries:
    the client already tried twice)."""
    what = (
        "its API returned an error"
        if isinstance(error, BrokerAPIError)
        else "the sync pipeline failed unexpectedly"
    )
    rid = f", request {error.request_id}" if error.request_id else ""
    message = (
        f"the broker failed, {BROKER_RETRY}: syncing {broker or 'the broker'} "
        f"(connection {conn.connection_id}) did not complete, {what} "
        f"({error.status} {error.error_code}{rid}). Nothing was imported by this run."
    )
    log_id = error.details.get("log_id")
    ws.sync.failed(
        run_id,
        message,
        retry=BROKER_RETRY,
        retry_after=error.retry_after,
        log_id=log_id if isinstance(log_id, int) else None,
    )
    ws.ref.invalidate("connections")
    raise UserError(message) from None


async def _wait(
    seconds: float, progress: Progress | None, sleep: Callable[[float], Awaitable[None]]
) -> None:
    """Sleep in one-second ticks, reporting progress; cancellation ends it at once."""
    elapsed = 0.0
    while elapsed < seconds:
        if progress is not None:
            await progress(elapsed, seconds, f"cooldown: syncing in {seconds - elapsed:.0f} s")
        tick = min(1.0, seconds - elapsed)
        await sleep(tick)
        elapsed += tick
    if progress is not None:
        await progress(seconds, seconds, "cooldown over: syncing")
