"""The local write ledger: what every journaling call did, durable across restarts.

A tool call is named by (principal, tool, call id). The ledger keeps, per call, the
digest of its arguments, the arguments themselves (so an unfinished call can be
resumed), its state and its final result; and per step of a call (create, tags,
screenshot, ...) the idempotency key sent and the step's result.

* The same call again returns the recorded result without spending an API request,
  also after a restart and after the API's 24 h replay window.
* The same call id with other arguments is refused.
* A call whose outcome is unknown stays `pending`; resuming it re-sends each
  unfinished step with the same key, which the API answers from its replay cache if
  the first attempt landed.

SQLite in WAL mode, one short transaction per change; safe for several server
processes sharing one state directory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["CallRecord", "Ledger", "StepRecord", "canonical_json", "digest_arguments"]

CallState = Literal["pending", "done", "failed"]
StepState = Literal["pending", "done"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    principal   TEXT NOT NULL,
    tool        TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    args_json   TEXT NOT NULL,
    id_source   TEXT NOT NULL,
    state       TEXT NOT NULL,
    result_json TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (principal, tool, call_id)
);
CREATE INDEX IF NOT EXISTS calls_by_digest ON calls (principal, tool, args_digest, created_at);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, updated_at);
CREATE TABLE IF NOT EXISTS steps (
    principal   TEXT NOT NULL,
    tool        TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    step        TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    state       TEXT NOT NULL,
    result_json TEXT,
    first_sent  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (principal, tool, call_id, step)
);
"""


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest_arguments(arguments: Any) -> str:
    return hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CallRecord:
    principal: str
    tool: str
    call_id: str
    args_digest: str
    arguments: dict[str, Any]
    id_source: str
    state: CallState
    result: dict[str, Any] | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StepRecord:
    step: str
    idem_key: str
    state: StepState
    result: Any
    first_sent: float


class Ledger:
    """Durable record of journaling calls. `path=":memory:"` for tests."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            if str(path) != ":memory:":
                # WAL with synchronous=NORMAL: every commit survives the process being
                # killed (the crash drill), without an fsync per commit.
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _call(row: sqlite3.Row) -> CallRecord:
        return CallRecord(
            principal=row["principal"],
            tool=row["tool"],
            call_id=row["call_id"],
            args_digest=row["args_digest"],
            arguments=json.loads(row["args_json"]),
            id_source=row["id_source"],
            state=row["state"],
            result=json.loads(row["result_json"]) if row["result_json"] else None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    # --- calls ---------------------------------------------------------------------------

    def get_call(self, principal: str, tool: str, call_id: str) -> CallRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM calls WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            ).fetchone()
        return self._call(row) if row else None

    def begin_call(
        self,
        principal: str,
        tool: str,
        call_id: str,
        arguments: dict[str, Any],
        *,
        id_source: str,
    ) -> tuple[CallRecord, bool]:
        """Record a call as pending unless it exists; returns (record, created)."""
        digest = digest_arguments(arguments)
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM calls WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            ).fetchone()
            if row is not None:
                return self._call(row), False
            db.execute(
                "INSERT INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    principal,
                    tool,
                    call_id,
                    digest,
                    canonical_json(arguments),
                    id_source,
                    "pending",
                    None,
                    now,
                    now,
                ),
            )
        record = self.get_call(principal, tool, call_id)
        assert record is not None
        return record, True

    def finish_call(
        self,
        principal: str,
        tool: str,
        call_id: str,
        *,
        state: CallState,
        result: dict[str, Any] | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE calls SET state=?, result_json=?, updated_at=? "
                "WHERE principal=? AND tool=? AND call_id=?",
                (
                    state,
                    canonical_json(result) if result is not None else None,
                    self._clock(),
                    principal,
                    tool,
                    call_id,
                ),
            )

    def forget_call(self, principal: str, tool: str, call_id: str) -> None:
        """Drop a call that failed before anything was sent, so it can be tried afresh."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM steps WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            )
            db.execute(
                "DELETE FROM calls WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            )

    def recent_twin(
        self,
        principal: str,
        tool: str,
        args_digest: str,
        *,
        other_than: str,
        within: float,
    ) -> CallRecord | None:
        """The newest other call with the same arguments inside the window, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM calls WHERE principal=? AND tool=? AND args_digest=? "
                "AND call_id<>? AND created_at>=? AND state<>'failed' "
                "ORDER BY created_at DESC LIMIT 1",
                (principal, tool, args_digest, other_than, self._clock() - within),
            ).fetchone()
        return self._call(row) if row else None

    def pending_calls(self, principal: str | None = None) -> list[CallRecord]:
        query = "SELECT * FROM calls WHERE state='pending'"
        params: tuple[str, ...] = ()
        if principal is not None:
            query += " AND principal=?"
            params = (principal,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at", params).fetchall()
        return [self._call(r) for r in rows]

    # --- steps ---------------------------------------------------------------------------

    def get_step(self, principal: str, tool: str, call_id: str, step: str) -> StepRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM steps WHERE principal=? AND tool=? AND call_id=? AND step=?",
                (principal, tool, call_id, step),
            ).fetchone()
        if row is None:
            return None
        return StepRecord(
            step=row["step"],
            idem_key=row["idem_key"],
            state=row["state"],
            result=json.loads(row["result_json"]) if row["result_json"] else None,
            first_sent=row["first_sent"],
        )

    def mark_step_sent(
        self, principal: str, tool: str, call_id: str, step: str, idem_key: str
    ) -> StepRecord:
        """Record, before sending, that a step is in flight under `idem_key`."""
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (principal, tool, call_id, step) DO NOTHING",
                (principal, tool, call_id, step, idem_key, "pending", None, now, now),
            )
        record = self.get_step(principal, tool, call_id, step)
        assert record is not None
        return record

    def finish_step(self, principal: str, tool: str, call_id: str, step: str, result: Any) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE steps SET state='done', result_json=?, updated_at=? "
                "WHERE principal=? AND tool=? AND call_id=? AND step=?",
                (canonical_json(result), self._clock(), principal, tool, call_id, step),
            )

    def steps(self, principal: str, tool: str, call_id: str) -> list[StepRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM steps WHERE principal=? AND tool=? AND call_id=? "
                "ORDER BY first_sent",
                (principal, tool, call_id),
            ).fetchall()
        return [
            StepRecord(
                step=r["step"],
                idem_key=r["idem_key"],
                state=r["state"],
                result=json.loads(r["result_json"]) if r["result_json"] else None,
                first_sent=r["first_sent"],
            )
            for r in rows
        ]
