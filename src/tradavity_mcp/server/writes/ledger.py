"""The local write ledger: what every journaling call did, durable across restarts.

A call is a row named by (principal, tool, call id); each HTTP write of a call is a step
row named by the call and a step name, holding the idempotency key sent, the resolved
request (so a retry sends exactly what the first attempt sent) and the outcome.

Everything that decides "is this a new write?" happens inside one `BEGIN IMMEDIATE`
transaction (`Ledger.claim`), so the rules hold across tasks of one process and across
processes sharing the file (a desktop app and an IDE on one laptop):

* a call id seen before: replay, resume or refuse (other arguments);
* an identical call inside the duplicate window: answered by the first (`twin`);
* a `journal_trade` whose trade matches one that ended partial or pending: continued.

A file a call must upload (a screenshot sent as data) is kept once, as raw bytes, only
while the call is unfinished (`blobs`); a finished call keeps its digest and size.

A call being worked on holds a lease (owner + expiry, renewed while it runs); another
worker waits for the lease instead of writing. A lease whose owner process died on
this host is free at once.

SQLite in WAL mode, one short transaction per change. Every SQLite failure surfaces as
`LedgerUnavailable`, whose message names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ...api.clock import Now

__all__ = [
    "CallDraft",
    "CallRecord",
    "Claim",
    "Ledger",
    "LedgerUnavailable",
    "StepRecord",
    "Unrecorded",
    "UploadLink",
    "canonical_json",
    "digest_arguments",
]

CallState = Literal["pending", "done", "failed", "twin", "superseded"]
StepState = Literal["pending", "done", "failed"]
ClaimKind = Literal["new", "resume", "busy", "replay", "twin", "continue", "mismatch", "failed"]

#: Bumped when the schema changes; older files are migrated in place on open.
SCHEMA_VERSION = 2

#: A submit of the Apps journal form: `com.tradavity/callId` is review_trade's form id
#: and a digest of the submitted arguments (`apps/src/journal/main.js`).
_FORM_CALL = re.compile(r"(meta:form-[0-9a-f]{32}:)[0-9a-z]{1,16}")


def form_of(call_id: str) -> str | None:
    """The form a call id's submit came from (its prefix, no LIKE wildcard), or None."""
    match = _FORM_CALL.fullmatch(call_id)
    return match.group(1) if match else None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    principal    TEXT NOT NULL,
    tool         TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    args_digest  TEXT NOT NULL,
    args_json    TEXT NOT NULL,
    id_source    TEXT NOT NULL,
    state        TEXT NOT NULL,
    result_json  TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    trade_digest TEXT,
    target       TEXT,
    outcome      TEXT,
    twin_of      TEXT,
    owner        TEXT,
    lease_until  REAL,
    PRIMARY KEY (principal, tool, call_id)
);
CREATE INDEX IF NOT EXISTS calls_by_digest ON calls (principal, tool, args_digest, created_at);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, updated_at);
CREATE TABLE IF NOT EXISTS steps (
    principal    TEXT NOT NULL,
    tool         TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    step         TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    state        TEXT NOT NULL,
    result_json  TEXT,
    first_sent   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    request_json TEXT,
    error        TEXT,
    PRIMARY KEY (principal, tool, call_id, step)
);
CREATE TABLE IF NOT EXISTS blobs (
    principal    TEXT NOT NULL,
    tool         TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    digest       TEXT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (principal, tool, call_id, digest)
);
CREATE TABLE IF NOT EXISTS upload_links (
    token_hash   TEXT PRIMARY KEY,
    principal    TEXT NOT NULL,
    tool         TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    trade_number INTEGER NOT NULL,
    state        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    filename     TEXT,
    digest       TEXT,
    taken_at     REAL
);
CREATE INDEX IF NOT EXISTS upload_links_by_expiry ON upload_links (expires_at);
"""

#: Columns added in schema 2, for ledgers written by older versions.
_V2_COLUMNS = {
    "calls": ("trade_digest", "target", "outcome", "twin_of", "owner", "lease_until REAL"),
    "steps": ("request_json", "error"),
}


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest_arguments(arguments: Any) -> str:
    """SHA-256 of the arguments' `canonical_json`. A long string in them (a chart's
    base64) is hashed in slices where it lies, not copied into the JSON text and that
    text's bytes (two copies of a 10 MB chart's 13 MB): the digest is the same."""
    longs: list[str] = []
    mark = secrets.token_hex(8)

    def swap(value: Any) -> Any:
        if isinstance(value, str) and len(value) > _LONG_TEXT:
            longs.append(value)
            return f"{mark}:{len(longs) - 1}"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [swap(v) for v in value]
        return value

    text = canonical_json(swap(arguments))
    if not longs:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    at = 0
    for found in re.finditer(f'"{mark}:([0-9]+)"', text):
        digest.update(text[at : found.start()].encode("utf-8"))
        long = longs[int(found.group(1))]
        digest.update(b'"')
        for i in range(0, len(long), _SLICE):
            digest.update(canonical_json(long[i : i + _SLICE])[1:-1].encode("utf-8"))
        digest.update(b'"')
        at = found.end()
    digest.update(text[at:].encode("utf-8"))
    return digest.hexdigest()


#: Strings longer than this are hashed in slices of `_SLICE` characters.
_LONG_TEXT = 64 * 1024
_SLICE = 1 << 18


#: What a ledger failure says was sent, unless told otherwise: nothing, for every write is
#: recorded before it is sent.
NOTHING_SENT = "Nothing was sent to Tradavity."


class LedgerUnavailable(Exception):
    """The ledger cannot be read or written. The message names the store and the fix
    (`problem`), then what was sent to Tradavity (`sent`: by default, nothing)."""

    def __init__(self, problem: str, sent: str = NOTHING_SENT) -> None:
        super().__init__(f"{problem} {sent}")
        self.problem = problem


class Unrecorded(LedgerUnavailable):
    """Tradavity carried out a step's write, and then the ledger could not record it.

    The step stays recorded as sent, under its key: once the ledger works again, the
    call is finished by sending it again under that key, which Tradavity answers with
    the write it already made (`result`), not a second one.
    """

    def __init__(self, cause: LedgerUnavailable, step: str, result: Any) -> None:
        number = result.get("trade_number") if isinstance(result, dict) else None
        what = f" (trade #{number})" if number is not None else ""
        super().__init__(
            cause.problem,
            f"Tradavity carried out the '{step}' write{what}, but it could not be recorded; "
            "the call is finished from the ledger once it works again (nothing is written "
            "twice): do not repeat it.",
        )
        self.step = step
        self.result = result


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class _Db(Protocol):
    """What the rules need of a connection: `?` placeholders, rows read by column name
    (sqlite3 as it is; PostgreSQL through `store_pg`'s adapter)."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor: ...


def _read_only(path: str) -> bool:
    """Is the ledger's file, or its folder, not writable (a read-only mount, say)?"""
    if path == ":memory:":
        return False
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return True
    return os.path.isdir(folder) and not os.access(folder, os.W_OK)


def _explain(path: str, exc: sqlite3.Error) -> LedgerUnavailable:
    text = str(exc).casefold()
    where = f"the write ledger {path}"
    if "readonly" in text or "read-only" in text or "permission" in text or _read_only(path):
        fix = (
            f"{where} is read-only. Make it (and its folder) writable by this user, or point "
            "TRADAVITY_STATE_DIR at a writable folder."
        )
    elif "full" in text or "no space" in text:
        fix = (
            f"{where} cannot grow: the disk is full. Free some space (or point "
            "TRADAVITY_STATE_DIR at a disk with room), then try again."
        )
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        fix = (
            f"{where} is damaged ({exc}). Move it aside (keep it: it records what was "
            "written) and start again; the server creates a fresh one."
        )
    elif "locked" in text or "busy" in text:
        fix = f"{where} stayed locked by another process; try again in a moment."
    else:
        fix = (
            f"{where} could not be used ({exc}). Check the file and TRADAVITY_STATE_DIR, "
            "or run `tradavity-mcp doctor`."
        )
    return LedgerUnavailable(fix)


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
    trade_digest: str | None = None
    target: str | None = None
    outcome: str | None = None
    twin_of: str | None = None
    owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True)
class UploadLink:
    """A one-time upload link of a call's screenshot step (the token only as its hash)."""

    token_hash: str
    principal: str
    tool: str
    call_id: str
    trade_number: int
    state: Literal["open", "taken"]
    expires_at: float
    filename: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class CallDraft:
    """A call as it arrives: what the ledger needs to decide about it and to record it.

    `args_json` is what is kept while the call is unfinished (files as "blob:<digest>",
    their bytes in `blobs`); `args_digest` names the full arguments.
    """

    principal: str
    tool: str
    call_id: str
    args_digest: str
    args_json: str
    id_source: str
    #: journal_trade: the trade part's digest, to carry on a partial or pending call.
    trade_digest: str | None = None
    #: A state-setting call: what it sets (earlier unfinished ones go first).
    target: str | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class StepRecord:
    step: str
    idem_key: str
    state: StepState
    result: Any
    first_sent: float
    request: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Claim:
    """What `Ledger.claim` decided, and the record it decided on.

    new/resume/continue: this worker now holds the lease of `record` and must run it
    (continue: `previous` is the call it carries on). busy: another worker holds it;
    wait and claim again. replay: `record` is done. twin: `record` is the identical
    earlier call that answers for this one. mismatch: the id was used with other
    arguments. failed: `record` failed for good with something written.
    """

    kind: ClaimKind
    record: CallRecord
    previous: CallRecord | None = None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """Durable record of journaling calls, on SQLite. `path=":memory:"` for tests.

    The rules (`claim`, steps, blobs, prune) are written once, in portable SQL, against
    four connection hooks: `_tx`, `_read`, `close` and `lease_alive`. `store_pg.PgLedger`
    implements them on PostgreSQL. The server (`WriteCall`, the resumer) reaches either
    through `offload.AsyncLedger`, in worker threads, never on the event loop.
    """

    #: This process's name in leases: host, pid and a per-process nonce.
    OWNER_PREFIX = f"{socket.gethostname()}:{os.getpid()}:"

    def __init__(self, path: Path | str, *, clock: Now = time.time) -> None:
        self._clock = clock
        self.path = str(path)
        self._lock = threading.Lock()
        self._ended_lock = threading.Lock()
        #: Owners of this process whose worker ended without giving its lease back.
        self._ended: set[str] = set()
        try:
            if self.path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise _explain(self.path, sqlite3.OperationalError(str(exc))) from None
        self._db.row_factory = sqlite3.Row
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._db.close()
            raise _explain(self.path, exc) from None

    def _setup(self) -> None:
        db = self._db
        if self.path != ":memory:":
            # WAL with synchronous=NORMAL: every commit survives the process being killed
            # (the crash drill), without an fsync per commit. The WAL is trimmed back after
            # checkpoints so one large screenshot does not leave a large file behind.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=0")
            db.execute("PRAGMA wal_autocheckpoint=64")
        db.execute("PRAGMA busy_timeout=10000")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.execute("BEGIN IMMEDIATE")  # also proves the file is writable
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                self._migrate()
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        for table, columns in _V2_COLUMNS.items():
            have = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def new_owner(self) -> str:
        """A lease owner name for one worker of this process."""
        return self.OWNER_PREFIX + uuid.uuid4().hex[:12]

    def worker_ended(self, owner: str) -> None:
        """A worker of this process ended without giving its lease back (the store
        failed): its lease holds nothing, here, from now on (elsewhere, until it runs
        out)."""
        with self._ended_lock:
            self._ended.add(owner)

    def _worker_ended(self, owner: str) -> bool:
        with self._ended_lock:
            return owner in self._ended

    @contextmanager
    def _tx(self, scope: str | None = None) -> Iterator[_Db]:
        """One write transaction. `scope` (a principal) names what it decides about;
        SQLite's `BEGIN IMMEDIATE` serializes every writer anyway."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _explain(self.path, exc) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk at COMMIT does).
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None

    @staticmethod
    def _call(row: Any) -> CallRecord:
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
            trade_digest=row["trade_digest"],
            target=row["target"],
            outcome=row["outcome"],
            twin_of=row["twin_of"],
            owner=row["owner"],
            lease_until=row["lease_until"],
        )

    @staticmethod
    def _step(row: Any) -> StepRecord:
        return StepRecord(
            step=row["step"],
            idem_key=row["idem_key"],
            state=row["state"],
            result=json.loads(row["result_json"]) if row["result_json"] else None,
            first_sent=row["first_sent"],
            request=json.loads(row["request_json"]) if row["request_json"] else None,
            error=row["error"],
        )

    # --- leases --------------------------------------------------------------------------

    def lease_alive(self, record: CallRecord) -> bool:
        """Is somebody working on this call right now?"""
        if not record.owner or record.lease_until is None:
            return False
        if record.lease_until < self._clock() or self._worker_ended(record.owner):
            return False
        host, _, rest = record.owner.partition(":")
        pid = rest.partition(":")[0]
        # A worker in a process that no longer exists on this host holds nothing.
        return not (host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid)))

    def _leasing(self, db: _Db) -> None:
        """Called in the transaction that takes or renews a lease, before it does: a
        store whose leases stand on this process's session checks it holds it."""

    def _in_hand(self, record: CallRecord) -> bool:
        """Unfinished, and somebody is working on it right now."""
        return record.state == "pending" and self.lease_alive(record)

    def renew(self, principal: str, tool: str, call_id: str, owner: str, seconds: float) -> bool:
        """Extend `owner`'s lease; False when it holds it no more (another worker took
        the call over once the lease had run out, or the call's end was recorded)."""
        with self._tx(principal) as db:
            self._leasing(db)
            renewed = db.execute(
                "UPDATE calls SET lease_until=? WHERE principal=? AND tool=? AND call_id=? "
                "AND owner=? AND state='pending'",
                (self._clock() + seconds, principal, tool, call_id, owner),
            ).rowcount
        return renewed == 1

    def release(self, principal: str, tool: str, call_id: str, owner: str) -> None:
        with self._tx(principal) as db:
            db.execute(
                "UPDATE calls SET owner=NULL, lease_until=NULL "
                "WHERE principal=? AND tool=? AND call_id=? AND owner=?",
                (principal, tool, call_id, owner),
            )

    # --- calls ---------------------------------------------------------------------------

    def get_call(self, principal: str, tool: str, call_id: str) -> CallRecord | None:
        rows = self._read(
            "SELECT * FROM calls WHERE principal=? AND tool=? AND call_id=?",
            (principal, tool, call_id),
        )
        return self._call(rows[0]) if rows else None

    def claim(
        self,
        draft: CallDraft,
        *,
        owner: str,
        lease_seconds: float,
        window: float | None = None,
    ) -> Claim:
        """Decide, atomically, what a call is: new, resumed, replayed, a twin, carrying
        on an earlier one, or busy. `window`: the duplicate window, for calls whose
        identical twins (and, for journal_trade, unfinished trades) it answers from."""
        now = self._clock()
        lease = now + lease_seconds
        with self._tx(draft.principal) as db:
            self._leasing(db)
            row = self._row(db, draft.principal, draft.tool, draft.call_id)
            if row is not None:
                return self._existing(db, row, draft.args_digest, owner, lease)
            twin = self._twin(db, draft, now - window) if window is not None else None
            if twin is not None:
                if draft.id_source != "none":
                    # Remember that this host id is answered by the twin, so a replay
                    # of this id later gets the same answer.
                    self._insert(db, draft, state="twin", now=now, twin_of=twin.call_id)
                return Claim("twin", twin)
            previous = None
            if window is not None and draft.trade_digest is not None:
                previous = self._unfinished_trade(db, draft, now - window)
                if previous is not None and self._in_hand(previous):
                    return Claim("busy", previous)
            self._insert(db, draft, state="pending", now=now, owner=owner, lease_until=lease)
            if previous is not None:
                self._carry_on(db, previous, draft.call_id, now)
            record = self._row(db, draft.principal, draft.tool, draft.call_id)
            assert record is not None
            return Claim("continue" if previous else "new", record, previous)

    def _row(self, db: _Db, principal: str, tool: str, call_id: str) -> CallRecord | None:
        row = db.execute(
            "SELECT * FROM calls WHERE principal=? AND tool=? AND call_id=?",
            (principal, tool, call_id),
        ).fetchone()
        return self._call(row) if row is not None else None

    def _twin(self, db: _Db, draft: CallDraft, since: float) -> CallRecord | None:
        """The newest identical call since `since` that wrote or may have written."""
        row = db.execute(
            "SELECT * FROM calls WHERE principal=? AND tool=? AND args_digest=? "
            "AND created_at>=? AND state IN ('pending','done') ORDER BY created_at DESC LIMIT 1",
            (draft.principal, draft.tool, draft.args_digest, since),
        ).fetchone()
        return self._call(row) if row is not None else None

    def _unfinished_trade(self, db: _Db, draft: CallDraft, since: float) -> CallRecord | None:
        """The newest call with the same trade since `since` that ended partial or is
        still pending: the one a corrected journal_trade carries on. The submits of one
        review form (`form_of`) carry on each other at any age: a form is one trade."""
        form = form_of(draft.call_id)
        row = db.execute(
            "SELECT * FROM calls WHERE principal=? AND tool=? AND trade_digest=? "
            "AND (created_at>=? OR call_id LIKE ?) "
            "AND (state='pending' OR (state='done' AND outcome='partial')) "
            "ORDER BY created_at DESC LIMIT 1",
            (draft.principal, draft.tool, draft.trade_digest, since, f"{form}%" if form else ""),
        ).fetchone()
        return self._call(row) if row is not None else None

    def _existing(
        self,
        db: _Db,
        record: CallRecord,
        args_digest: str,
        owner: str,
        lease: float,
    ) -> Claim:
        if record.args_digest != args_digest:
            return Claim("mismatch", record)
        if record.state in ("twin", "superseded") and record.twin_of:
            twin = self._row(db, record.principal, record.tool, record.twin_of)
            if twin is not None:
                return Claim("twin", twin)
        if record.state == "done":
            return Claim("replay", record)
        if record.state == "failed":
            return Claim("failed", record)
        if self.lease_alive(record):
            return Claim("busy", record)
        db.execute(
            "UPDATE calls SET owner=?, lease_until=? WHERE principal=? AND tool=? AND call_id=?",
            (owner, lease, record.principal, record.tool, record.call_id),
        )
        return Claim("resume", record)

    def _insert(
        self,
        db: _Db,
        draft: CallDraft,
        *,
        state: CallState,
        now: float,
        twin_of: str | None = None,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Record a call; a pending one keeps the files it has to upload."""
        db.execute(
            "INSERT INTO calls (principal, tool, call_id, args_digest, args_json, id_source, "
            "state, created_at, updated_at, trade_digest, target, twin_of, owner, lease_until) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                draft.principal, draft.tool, draft.call_id, draft.args_digest, draft.args_json,
                draft.id_source, state, now, now, draft.trade_digest, draft.target, twin_of,
                owner, lease_until,
            ),
        )  # fmt: skip
        if state != "pending":
            return
        for digest, data in draft.blobs.items():
            db.execute(
                "INSERT INTO blobs (principal, tool, call_id, digest, data) VALUES (?,?,?,?,?) "
                "ON CONFLICT (principal, tool, call_id, digest) DO NOTHING",
                (draft.principal, draft.tool, draft.call_id, digest, data),
            )

    def _carry_on(self, db: _Db, previous: CallRecord, call_id: str, now: float) -> None:
        """The new call takes over the steps of `previous` that were written or may have
        been (same keys, same requests); steps that failed are left to be written anew."""
        db.execute(
            "INSERT INTO steps (principal, tool, call_id, step, idem_key, state, result_json, "
            "first_sent, updated_at, request_json, error) SELECT principal, tool, ?, step, "
            "idem_key, state, result_json, first_sent, updated_at, request_json, error FROM steps "
            "WHERE principal=? AND tool=? AND call_id=? AND state IN ('done','pending')",
            (call_id, previous.principal, previous.tool, previous.call_id),
        )
        self._drop_blobs(db, previous.principal, previous.tool, previous.call_id)
        db.execute(
            "UPDATE calls SET state='superseded', twin_of=?, owner=NULL, lease_until=NULL, "
            "updated_at=? WHERE principal=? AND tool=? AND call_id=?",
            (call_id, now, previous.principal, previous.tool, previous.call_id),
        )

    def finish_call(
        self,
        principal: str,
        tool: str,
        call_id: str,
        *,
        state: CallState,
        result: dict[str, Any] | None,
        outcome: str | None = None,
        stored_args: dict[str, Any] | None = None,
    ) -> None:
        """Record the end of a call; `stored_args` replaces the arguments kept (so a
        finished call keeps a screenshot's digest and size, not its bytes)."""
        with self._tx(principal) as db:
            db.execute(
                "UPDATE calls SET state=?, outcome=?, result_json=?, updated_at=?, owner=NULL, "
                "lease_until=NULL WHERE principal=? AND tool=? AND call_id=?",
                (
                    state,
                    outcome,
                    canonical_json(result) if result is not None else None,
                    self._clock(),
                    principal,
                    tool,
                    call_id,
                ),
            )
            if stored_args is not None:
                db.execute(
                    "UPDATE calls SET args_json=? WHERE principal=? AND tool=? AND call_id=?",
                    (canonical_json(stored_args), principal, tool, call_id),
                )
            self._drop_blobs(db, principal, tool, call_id)
            # Requests are kept only while a step may have to be sent again, and step
            # results only while a later call may carry on from them (a partial call).
            keep_results = state == "done" and outcome == "partial"
            db.execute(
                "UPDATE steps SET request_json=NULL, "
                "result_json=CASE WHEN ? THEN result_json ELSE NULL END "
                "WHERE principal=? AND tool=? AND call_id=?",
                (keep_results, principal, tool, call_id),
            )

    def forget_call(self, principal: str, tool: str, call_id: str) -> None:
        """Drop a call that failed before anything was sent, so it can be tried afresh."""
        with self._tx(principal) as db:
            self._drop_blobs(db, principal, tool, call_id)
            db.execute(
                "DELETE FROM steps WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            )
            db.execute(
                "DELETE FROM calls WHERE principal=? AND tool=? AND call_id=?",
                (principal, tool, call_id),
            )

    @staticmethod
    def _drop_blobs(db: _Db, principal: str, tool: str, call_id: str) -> None:
        db.execute(
            "DELETE FROM blobs WHERE principal=? AND tool=? AND call_id=?",
            (principal, tool, call_id),
        )

    def blobs(self, principal: str, tool: str, call_id: str) -> dict[str, bytes]:
        """The files an unfinished call still has to upload, by digest."""
        rows = self._read(
            "SELECT digest, data FROM blobs WHERE principal=? AND tool=? AND call_id=?",
            (principal, tool, call_id),
        )
        return {r["digest"]: bytes(r["data"]) for r in rows}

    def pending_calls(self, principal: str | None = None) -> list[CallRecord]:
        """Unfinished calls, oldest first (the order they must be finished in)."""
        query = "SELECT * FROM calls WHERE state='pending'"
        params: tuple[str, ...] = ()
        if principal is not None:
            query += " AND principal=?"
            params = (principal,)
        return [self._call(r) for r in self._read(query + " ORDER BY created_at", params)]

    def earlier_pending(
        self, principal: str, target: str, before: float, other_than: str
    ) -> list[CallRecord]:
        """Unfinished calls that set the same thing (`target`) and came first."""
        rows = self._read(
            "SELECT * FROM calls WHERE principal=? AND target=? "
            "AND state='pending' AND created_at<=? AND call_id<>? ORDER BY created_at",
            (principal, target, before, other_than),
        )
        return [self._call(r) for r in rows]

    def prune(self, older_than: float) -> int:
        """Forget finished calls last touched before `older_than`. Returns how many."""
        with self._tx() as db:
            gone = db.execute(
                "SELECT principal, tool, call_id FROM calls "
                "WHERE state<>'pending' AND updated_at<?",
                (older_than,),
            ).fetchall()
            for r in gone:
                db.execute(
                    "DELETE FROM steps WHERE principal=? AND tool=? AND call_id=?",
                    (r["principal"], r["tool"], r["call_id"]),
                )
            db.execute("DELETE FROM calls WHERE state<>'pending' AND updated_at<?", (older_than,))
            db.execute("DELETE FROM upload_links WHERE expires_at<?", (older_than,))
        return len(gone)

    # --- upload links --------------------------------------------------------------------

    def open_upload(
        self,
        token_hash: str,
        principal: str,
        tool: str,
        call_id: str,
        trade_number: int,
        expires_at: float,
    ) -> None:
        """Record a new upload link for a call (its token stored only as its hash)."""
        with self._tx(principal) as db:
            db.execute(
                "INSERT INTO upload_links (token_hash, principal, tool, call_id, trade_number, "
                "state, created_at, expires_at) VALUES (?,?,?,?,?,'open',?,?)",
                (token_hash, principal, tool, call_id, trade_number, self._clock(), expires_at),
            )

    @staticmethod
    def _link(row: Any) -> UploadLink:
        return UploadLink(
            token_hash=row["token_hash"],
            principal=row["principal"],
            tool=row["tool"],
            call_id=row["call_id"],
            trade_number=int(row["trade_number"]),
            state=row["state"],
            expires_at=float(row["expires_at"]),
            filename=row["filename"],
            digest=row["digest"],
        )

    def upload_link(self, token_hash: str) -> UploadLink | None:
        rows = self._read("SELECT * FROM upload_links WHERE token_hash=?", (token_hash,))
        return self._link(rows[0]) if rows else None

    def take_upload(self, token_hash: str, filename: str, data: bytes) -> UploadLink | None:
        """Take the file for an open, unexpired link: the link is spent and the file kept
        with its call, in one transaction. None when the link is unknown, spent or
        expired (of two uploads at once, one wins)."""
        digest = hashlib.sha256(data).hexdigest()
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "UPDATE upload_links SET state='taken', filename=?, digest=?, taken_at=? "
                "WHERE token_hash=? AND state='open' AND expires_at>=? RETURNING *",
                (filename, digest, now, token_hash, now),
            ).fetchone()
            if row is None:
                return None
            link = self._link(row)
            db.execute(
                "INSERT INTO blobs (principal, tool, call_id, digest, data) VALUES (?,?,?,?,?) "
                "ON CONFLICT (principal, tool, call_id, digest) DO NOTHING",
                (link.principal, link.tool, link.call_id, digest, data),
            )
        return link

    # --- steps ---------------------------------------------------------------------------

    def get_step(self, principal: str, tool: str, call_id: str, step: str) -> StepRecord | None:
        rows = self._read(
            "SELECT * FROM steps WHERE principal=? AND tool=? AND call_id=? AND step=?",
            (principal, tool, call_id, step),
        )
        return self._step(rows[0]) if rows else None

    def mark_step_sent(
        self,
        principal: str,
        tool: str,
        call_id: str,
        step: str,
        idem_key: str,
        request: Any = None,
        *,
        resend: bool = False,
    ) -> StepRecord:
        """Record, before sending, that a step is in flight under `idem_key` with
        `request`. An existing record wins (its key and request are what a retry sends),
        unless `resend` replaces it (a fresh key after the replay window)."""
        now = self._clock()
        request_json = canonical_json(request) if request is not None else None
        params = (principal, tool, call_id, step, idem_key, "pending", now, now, request_json)
        with self._tx(principal) as db:
            if resend:
                db.execute(
                    "UPDATE steps SET idem_key=?, state='pending', request_json=?, "
                    "first_sent=?, updated_at=?, error=NULL "
                    "WHERE principal=? AND tool=? AND call_id=? AND step=?",
                    (idem_key, request_json, now, now, principal, tool, call_id, step),
                )
            db.execute(
                "INSERT INTO steps (principal, tool, call_id, step, idem_key, state, first_sent, "
                "updated_at, request_json) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (principal, tool, call_id, step) DO NOTHING",
                params,
            )
        record = self.get_step(principal, tool, call_id, step)
        assert record is not None
        return record

    def finish_step(self, principal: str, tool: str, call_id: str, step: str, result: Any) -> None:
        with self._tx(principal) as db:
            db.execute(
                "UPDATE steps SET state='done', result_json=?, updated_at=? "
                "WHERE principal=? AND tool=? AND call_id=? AND step=?",
                (canonical_json(result), self._clock(), principal, tool, call_id, step),
            )

    def fail_step(self, principal: str, tool: str, call_id: str, step: str, error: str) -> None:
        """A step that failed for good: it is not sent again under this call."""
        with self._tx(principal) as db:
            db.execute(
                "UPDATE steps SET state='failed', error=?, updated_at=? "
                "WHERE principal=? AND tool=? AND call_id=? AND step=?",
                (error, self._clock(), principal, tool, call_id, step),
            )

    def steps(self, principal: str, tool: str, call_id: str) -> list[StepRecord]:
        rows = self._read(
            "SELECT * FROM steps WHERE principal=? AND tool=? AND call_id=? ORDER BY first_sent",
            (principal, tool, call_id),
        )
        return [self._step(r) for r in rows]
