"""Sync you can watch: runs, events and per-connection status for broker auto-sync.

Tradavity's API answers a manual sync with its result and keeps a sync log; it has no
job or status endpoint. This module gives syncs the shape of a job API (learned from
channel-sync jobs, managed-sync status and sync-status streams):

* every sync we trigger, and every row of `/autosync/log` (the 15-minute schedule
  included), is a **run** with a stable `run_id`, a source, a stage, a status, counts,
  times and, on failure, the error with what to do about it;
* every change of a run is an **event** (kept 24 hours, at most `MAX_EVENTS`, newest
  first), fanned out to subscribers: MCP resource notifications and the SSE stream;
* each connection has a **status**: idle, syncing, cooling_down (with seconds left),
  needs_reconnect, errored or disabled, with its last success and next scheduled sync.

`SyncMonitor` keeps all of it in the process. With `--redis` each workspace gets a
`shared.RedisSyncMonitor` instead: the same interface, the events in a Redis stream that
every replica reads. Recording is synchronous on both (a shared monitor sends its writes
in the background, in order; `flush` waits for them); reading is asynchronous.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ...api.clock import Now
from ...api.contract import missed

__all__ = [
    "COOLDOWN_SECONDS",
    "EVENT_TTL_SECONDS",
    "MAX_EVENTS",
    "ConnectionStatus",
    "SyncEvent",
    "SyncMonitor",
]

COOLDOWN_SECONDS = 20.0
EVENT_TTL_SECONDS = 24 * 3600.0
MAX_EVENTS = 5000
SCHEDULE_SECONDS = 15 * 60.0

Stage = Literal["queued", "started", "fetching", "saving", "completed", "failed", "cancelled"]
Status = Literal["in_progress", "success", "partial", "failed", "cancelled"]
State = Literal[
    "idle", "syncing", "cooling_down", "needs_reconnect", "errored", "disabled", "unknown"
]

# The reference documents no field of a connection (ARCHITECTURE.md, "Where the reference
# is silent"). The sandbox sends `is_active`, `status` (active, token_expired) and
# `token_status` (valid, expired); these sets add the likely spellings of the same.
_STATUS_OK = frozenset({"active", "ok", "connected", "healthy", "enabled", "idle", "syncing"})
_STATUS_OFF = frozenset({"disabled", "paused", "inactive"})
_STATUS_EXPIRED = frozenset(
    {"token_expired", "expired", "needs_reconnect", "reauth_required", "reconnect_required"}
)
_TOKEN_OK = frozenset({"valid", "ok", "active"})
_TOKEN_BAD = frozenset({"expired", "invalid", "revoked"})

_FINAL_STATUS: dict[str, Status] = {
    "success": "success",
    "completed": "success",
    "ok": "success",
    "partial": "partial",
    "failed": "failed",
    "error": "failed",
    "cancelled": "cancelled",
}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class SyncEvent:
    """One change of one run. `seq` orders events across runs."""

    seq: int
    at: float
    run_id: str
    connection_id: int
    broker: str | None
    source: Literal["manual", "schedule"]
    stage: Stage
    status: Status
    imported: int = 0
    skipped: int = 0
    fetched: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    retry: str | None = None
    retry_after_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("at", "started_at", "ended_at"):
            data[key] = _iso(data[key])
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class ConnectionStatus:
    connection_id: int
    broker: str | None
    account: str | None
    state: State
    cooldown_seconds_left: float | None = None
    reason: str | None = None
    action: str | None = None
    last_success_at: str | None = None
    next_scheduled_sync_at: str | None = None
    recent_runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}


Listener = Callable[[SyncEvent], None]


class SyncMonitor:
    """Runs and events of one workspace (one principal), in this process."""

    def __init__(self, clock: Now = time.time, *, max_events: int = MAX_EVENTS):
        self._clock = clock
        self._events: deque[SyncEvent] = deque(maxlen=max_events)
        self._runs: dict[str, SyncEvent] = {}
        self._run_for_log: dict[int, str] = {}
        self._last_manual: dict[int, float] = {}
        self._last_seq = 0
        self._ids = itertools.count(1)
        self._listeners: list[Listener] = []
        #: Whether the API's sync log has been read into this monitor yet.
        self.log_read = False

    def _next_seq(self) -> int:
        """An event's SSE id: the clock's milliseconds times 1000, or one more than the
        last (as the Redis history's ids). It grows across restarts, so a client resuming
        with a Last-Event-ID from before one gets every event since."""
        self._last_seq = max(self._last_seq + 1, int(self._clock() * 1000) * 1000)
        return self._last_seq

    def knows_seq(self, seq: int) -> bool:
        """Whether `seq` can be an id this history gave out: not one from its future (a
        clock set back, another server's), which would make a resume skip everything."""
        return seq <= max(self._last_seq, int(self._clock() * 1000) * 1000)

    # --- subscribers ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: SyncEvent, *, log_id: int | None = None, new_log: bool = False) -> None:
        """Record `event`. `log_id`: the platform's log row the run is (`new_log`: a row read
        from the log, recorded only if no run has claimed that row yet)."""
        self._events.append(event)
        self._runs[event.run_id] = event
        for listener in list(self._listeners):
            listener(event)

    def _note_manual(self, connection_id: int, at: float, *, at_least: bool = False) -> None:
        """A manual sync of `connection_id` counts as made at `at` for its cooldown
        (`at_least`: unless a later one is known)."""
        if at_least:
            at = max(self._last_manual.get(connection_id, 0.0), at)
        self._last_manual[connection_id] = at

    def _new_run_id(self) -> str:
        return f"run_{int(self._clock())}_{next(self._ids)}"

    async def claim_manual(self, run_id: str) -> float:
        """Before a manual sync is sent: 0 to go ahead, else the seconds its cooldown has
        left. In one process the API's own refusal is the only check (it answers
        `connection_sync_cooldown`); a shared monitor holds the cooldown for all replicas."""
        return 0.0

    async def flush(self) -> None:
        """Wait until what was recorded is readable everywhere (here: it already is)."""

    # --- reading -------------------------------------------------------------------------

    async def events(self, limit: int = 50) -> list[SyncEvent]:
        """Newest first, at most `limit`, none older than 24 hours."""
        cutoff = self._clock() - EVENT_TTL_SECONDS
        fresh = [e for e in reversed(self._events) if e.at >= cutoff]
        return fresh[:limit]

    async def events_after(self, seq: int) -> list[SyncEvent]:
        """Oldest first: every event newer than `seq` (for streams)."""
        cutoff = self._clock() - EVENT_TTL_SECONDS
        return [e for e in self._events if e.seq > seq and e.at >= cutoff]

    async def runs(self, limit: int = 20) -> list[SyncEvent]:
        """The latest event of each run, newest first."""
        cutoff = self._clock() - EVENT_TTL_SECONDS
        latest = sorted(
            (e for e in self._runs.values() if e.at >= cutoff), key=lambda e: e.seq, reverse=True
        )
        return latest[:limit]

    async def cooldown_left(self, connection_id: int) -> float:
        last = self._last_manual.get(connection_id)
        if last is None:
            return 0.0
        return max(0.0, COOLDOWN_SECONDS - (self._clock() - last))

    # --- our own triggers ----------------------------------------------------------------

    def start_manual(self, connection_id: int, broker: str | None) -> str:
        run_id = self._new_run_id()
        now = self._clock()
        self._emit(
            SyncEvent(
                seq=self._next_seq(),
                at=now,
                run_id=run_id,
                connection_id=connection_id,
                broker=broker,
                source="manual",
                stage="queued",
                status="in_progress",
            )
        )
        return run_id

    def _advance(
        self, run_id: str, *, log_id: int | None = None, **changes: Any
    ) -> SyncEvent | None:
        current = self._runs.get(run_id)
        if current is None:
            return None
        event = replace(current, seq=self._next_seq(), at=self._clock(), **changes)
        self._emit(event, log_id=log_id)
        return event

    def started(self, run_id: str) -> None:
        self._advance(run_id, stage="started", started_at=self._clock())

    def completed(self, run_id: str, result: dict[str, Any]) -> None:
        log_id = result.get("log_id")
        if not isinstance(log_id, int):
            log_id = None
        if log_id is not None:
            self._run_for_log[log_id] = run_id
        errors = [str(e) for e in result.get("errors") or []]
        event = self._advance(
            run_id,
            log_id=log_id,
            stage="completed",
            status="partial" if errors else "success",
            imported=int(result.get("imported") or 0),
            skipped=int(result.get("skipped") or 0),
            fetched=int(result.get("total_fetched") or 0),
            ended_at=self._clock(),
            error="; ".join(errors) or None,
        )
        if event is not None:
            self._note_manual(event.connection_id, self._clock())

    def cooling_down(self, run_id: str, retry_after: float) -> None:
        event = self._advance(
            run_id,
            stage="queued",
            retry_after_seconds=retry_after,
            retry=f"cooldown: syncs again in {retry_after:.0f} s",
        )
        if event is not None:
            # The API told us when the window ends; remember it as the last manual sync.
            self._note_manual(event.connection_id, self._clock() - COOLDOWN_SECONDS + retry_after)

    def failed(
        self,
        run_id: str,
        error: str,
        *,
        retry: str | None = None,
        retry_after: float | None = None,
        log_id: int | None = None,
    ) -> None:
        """The run failed. `retry_after`: the API's cooldown still runs that long (the failed
        run counted as a manual sync); `log_id`: the platform's log row for this run, so
        reading the log later does not make it a second run."""
        if log_id is not None:
            self._run_for_log[log_id] = run_id
        event = self._advance(
            run_id,
            log_id=log_id,
            stage="failed",
            status="failed",
            ended_at=self._clock(),
            error=error,
            retry=retry,
            retry_after_seconds=retry_after,
        )
        if event is not None and retry_after is not None:
            self._note_manual(event.connection_id, self._clock() - COOLDOWN_SECONDS + retry_after)

    def cancelled(self, run_id: str) -> None:
        self._advance(run_id, stage="cancelled", status="cancelled", ended_at=self._clock())

    # --- the platform's log --------------------------------------------------------------

    def ingest_log(self, rows: Iterable[dict[str, Any]], brokers: dict[int, str | None]) -> int:
        """Turn log rows we have not seen into finished runs. Returns how many were new."""
        self.log_read = True
        new = 0
        for log_id, row in sorted(
            ((_log_id(r), r) for r in rows if isinstance(r, dict)), key=lambda pair: pair[0]
        ):
            if log_id in self._run_for_log:
                continue
            connection_id = int(row.get("connection_id") or 0)
            run_id = f"log_{log_id}"
            self._run_for_log[log_id] = run_id
            started = _ts(row.get("started_at"))
            ended = _ts(row.get("finished_at") or row.get("ended_at"))
            raw_status = str(row.get("status") or "success").casefold()
            status = _FINAL_STATUS.get(raw_status, "failed")
            errors = [str(e) for e in row.get("errors") or []]
            source: Literal["manual", "schedule"] = (
                "manual" if row.get("trigger") == "manual" else "schedule"
            )
            at = ended or started or self._clock()
            self._emit(
                SyncEvent(
                    seq=self._next_seq(),
                    at=at,
                    run_id=run_id,
                    connection_id=connection_id,
                    broker=str(row.get("broker_key") or brokers.get(connection_id) or "") or None,
                    source=source,
                    stage="failed" if status == "failed" else "completed",
                    status=status,
                    imported=int(row.get("imported") or 0),
                    skipped=int(row.get("skipped") or 0),
                    fetched=int(row.get("total_fetched") or 0),
                    started_at=started,
                    ended_at=ended,
                    error="; ".join(errors) or (row.get("message") if status == "failed" else None),
                    retry="the next scheduled sync retries it" if status == "failed" else None,
                ),
                log_id=log_id,
                new_log=True,
            )
            if source == "manual" and ended is not None:
                self._note_manual(connection_id, ended, at_least=True)
            new += 1
        return new

    # --- status --------------------------------------------------------------------------

    async def status(self, connection: dict[str, Any]) -> ConnectionStatus:
        cid = int(connection.get("connection_id") or 0)
        runs = [r for r in await self.runs(200) if r.connection_id == cid]
        cooldown_left = await self.cooldown_left(cid)
        broker = connection.get("broker_name") or connection.get("broker_key")
        status = ConnectionStatus(
            connection_id=cid,
            broker=str(broker) if broker else None,
            account=connection.get("account_name"),
            state="idle",
            recent_runs=[r.to_json() for r in runs[:5]],
        )
        successes = [r for r in runs if r.status in {"success", "partial"}]
        last_ok = max((r.ended_at or r.at for r in successes), default=None)
        api_last = _ts(connection.get("last_sync_at"))
        if last_ok is None or (api_last is not None and api_last > last_ok):
            last_ok = api_last
        status.last_success_at = _iso(last_ok)
        next_sync = _ts(connection.get("next_sync_at"))
        if next_sync is None and last_ok is not None:
            next_sync = last_ok + SCHEDULE_SECONDS
        status.next_scheduled_sync_at = _iso(next_sync)

        token = str(connection.get("token_status") or "").casefold()
        api_state = str(connection.get("status") or "").casefold()
        latest = runs[0] if runs else None
        # `is_active` says only whether the connection is switched on, not whether its
        # broker login still works: health needs `status` or `token_status`.
        readable = token in _TOKEN_OK | _TOKEN_BAD or api_state in (
            _STATUS_OK | _STATUS_OFF | _STATUS_EXPIRED
        )
        if connection.get("is_active") is False or api_state in _STATUS_OFF:
            status.state = "disabled"
            status.action = "Enable the connection in Tradavity Settings -> Auto-Sync."
        elif (
            token in _TOKEN_BAD
            or api_state in _STATUS_EXPIRED
            or (
                latest is not None
                and latest.error is not None
                and "token" in latest.error.casefold()
                and latest.status == "failed"
            )
        ):
            status.state = "needs_reconnect"
            status.reason = "the broker login expired and could not be renewed"
            status.action = "Reconnect the broker in Tradavity Settings -> Auto-Sync."
        elif not readable:
            # Neither healthy nor broken can be read: never "idle" for a connection that
            # may have expired.
            found = {k: connection.get(k) for k in ("status", "token_status", "is_active")}
            said = ", ".join(f"{k}={v!r}" for k, v in found.items() if v is not None)
            status.state = "unknown"
            status.reason = (
                "Tradavity's record of this connection has no state this server can read "
                f"({said or 'no status, token_status or is_active field'})"
            )
            status.action = "Check the connection in Tradavity Settings -> Auto-Sync."
            missed(
                "autosync.connection",
                "a GET /autosync/connections row has none of the states this server reads "
                f"(status, token_status, is_active; found: {', '.join(sorted(connection))}): "
                "its state is shown as unknown",
            )
        elif latest is not None and latest.status == "in_progress":
            if latest.retry_after_seconds is not None and cooldown_left > 0:
                status.state = "cooling_down"
                status.cooldown_seconds_left = round(cooldown_left, 1)
            else:
                status.state = "syncing"
        elif latest is not None and latest.status == "failed":
            # A failed last run is the news, even while the cooldown it started runs.
            status.state = "errored"
            status.reason = latest.error
            status.action = latest.retry
            if cooldown_left > 0:
                status.cooldown_seconds_left = round(cooldown_left, 1)
        elif cooldown_left > 0:
            status.state = "cooling_down"
            status.cooldown_seconds_left = round(cooldown_left, 1)
        return status


def _log_id(row: dict[str, Any]) -> int:
    """A sync log row's id: `log_id` (the sandbox's name), else `id`; without either,
    a stable number made from the row's connection and times (negative, so it cannot
    meet a real id), and said once: the reference names no field of a log row."""
    for name in ("log_id", "id"):
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    missed(
        "autosync.log_id",
        "GET /autosync/log rows carry no log_id or id (found: "
        f"{', '.join(sorted(row))}): each run is known by its connection and times instead",
    )
    basis = "|".join(
        str(row.get(k)) for k in ("connection_id", "started_at", "finished_at", "ended_at")
    )
    return -int.from_bytes(hashlib.sha256(basis.encode()).digest()[:6], "big") - 1
