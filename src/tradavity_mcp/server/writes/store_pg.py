"""The write ledger on PostgreSQL, for several replicas sharing one store (`--store`).

`PgLedger` keeps every rule of `ledger.Ledger` (the same SQL, run through a small adapter)
and changes only how it reaches the store:

* Each write transaction first takes a transaction-level advisory lock on the call's
  principal, so everything that decides about one user's calls (`claim`, leases, steps,
  finishing) is serialized across every replica, as `BEGIN IMMEDIATE` serializes
  processes sharing one SQLite file. Two replicas claiming twins therefore decide one
  after the other: one writes, the other sees its twin. The primary keys make a second
  row for one call impossible even so.
* A lease is free when it has expired, or at once when its owner process is gone from
  the store: each process holds a session advisory lock on its own token for as long as
  its connection lives, so a SIGKILLed replica (whose connection PostgreSQL closes) frees
  its calls for the others without waiting out the lease. A process id says nothing
  about a process on another machine. A restart of PostgreSQL (or a failover) ends every
  session, the living replicas' too: for `RECONNECT_GRACE_SECONDS` after one, a free
  session lock proves nothing and a lease holds until it expires; meanwhile each living
  replica takes its lock again, at the latest at its next claim or renewal (which check
  the lock's connection), so it is held again long before the grace ends.
* Statements go through a few connections (`Connections`), so one user's call waiting
  on another replica's lock holds one connection, not the whole store.
* The tables come from versioned migrations shipped in the package
  (`migrations/NNNN_name.sql`), applied at start under an advisory lock and recorded in
  `schema_version`, so replicas starting together migrate once.
* A lost connection is opened again on the next use; every failure surfaces as
  `LedgerUnavailable`, naming the store (its URL without the password) and the fix.
"""

from __future__ import annotations

import queue
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from ...api.clock import Now
from .ledger import CallDraft, CallRecord, Claim, Ledger, LedgerUnavailable, _Cursor, _Db

__all__ = [
    "Connections",
    "PgLedger",
    "described",
    "migrate",
    "migrations",
    "one_line",
    "redact_url",
    "store_problem",
]

#: Connections one store opens at most (as many as the server's store threads).
POOL_SIZE = 4

#: After this process had to connect to PostgreSQL again (a restart, a failover), how long
#: a free session lock is not taken for its owner's death: the owner may be alive and not
#: connected again yet. As long as a lease (`call.LEASE_SECONDS`): a lease taken before
#: the loss has run out by then, and a living owner has taken its lock again (at its next
#: renewal, a quarter of a lease later).
RECONNECT_GRACE_SECONDS = 60.0

#: The advisory lock key that serializes migrations across replicas starting together.
_MIGRATION_LOCK = 0x7472_6164_6C65_6467  # "tradledg"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def redact_url(url: str) -> str:
    """The URL as it may be shown: no password, in the netloc or in the query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the PostgreSQL store"
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def one_line(exc: BaseException, url: str | None = None) -> str:
    """An exception's message on one line, with `url`'s password hidden."""
    text = " ".join(str(exc).split())
    password = urlsplit(url).password if url else None
    return text.replace(password, "***") if password else text


def described(exc: BaseException, url: str | None = None) -> str:
    """`Type: message` on one line (`one_line`), or the type alone when it says nothing."""
    text = one_line(exc, url)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def store_problem(exc: BaseException, url: str, where: str, *, rights: str, meanwhile: str) -> str:
    """What went wrong with a PostgreSQL store and what to do, on one line: the driver's
    message (its password hidden) sorted into credentials, a missing database, missing
    rights (`rights`: what the user needs to do) or an unreachable server (`meanwhile`:
    what the server does until it is back)."""
    text = one_line(exc, url)
    folded = text.casefold()
    if "password authentication" in folded or "authentication failed" in folded:
        return (
            f"{where} refused the credentials ({text}). Check the user and password in "
            "TRADAVITY_STORE_URL (--store)."
        )
    if "does not exist" in folded and "database" in folded:
        return f"{where}: the database does not exist. Create it (createdb), or fix --store."
    if "permission denied" in folded or "read-only" in folded:
        return (
            f"{where} refused a write ({text}). Give the user in TRADAVITY_STORE_URL rights "
            f"to {rights}."
        )
    if isinstance(exc, psycopg.OperationalError) or "connect" in folded:
        return (
            f"{where} cannot be reached ({text}). Check that PostgreSQL is running and "
            f"reachable from this machine, and TRADAVITY_STORE_URL (--store); {meanwhile}."
        )
    return f"{where} could not be used ({text}). Check the store and --store."


def migrations(package: str = __package__) -> list[tuple[int, str, str]]:
    """The migrations shipped in `package`'s `migrations` folder (the ledger's by
    default), (version, file name, SQL), in order."""
    found = []
    for item in resources.files(package).joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(item.name)
        if match:
            found.append((int(match.group(1)), item.name, item.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection[Any], package: str = __package__, schema: str = "") -> None:
    """Apply `package`'s migrations not yet recorded, in one transaction, under the
    advisory lock every replica takes first (so replicas starting together migrate once).

    The ledger's tables and its `schema_version` live in the default schema; another
    part of the server (`schema`, e.g. the OAuth store's) keeps its tables and its own
    `schema_version` in a schema of its own, created here.
    """
    table = sql.Identifier(schema, "schema_version") if schema else sql.Identifier("schema_version")
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        if schema:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
        have = {row[0] for row in cur.execute(sql.SQL("SELECT version FROM {}").format(table))}
        for version, name, text in migrations(package):
            if version in have:
                continue
            cur.execute(text.encode("utf-8"))
            cur.execute(
                sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(table),
                (version, name),
            )


class Connections:
    """A few connections to one store, taken one at a time by the calls that need them.

    Each is opened when first needed. One that sat unused for `CHECK_AFTER_SECONDS` is
    asked a trivial statement before it is handed out, and opened again if it does not
    answer; when a call finds its connection broken (a restart, a failover), every idle
    connection is dropped with it, so one loss fails at most the call that met it. Not
    `psycopg_pool`: it opens connections in the background, backing off after failures,
    and makes callers wait for it, so an outage would stall every call for the pool's
    timeout instead of failing it at once with the driver's reason, and recovery would
    wait for the next back-off.
    """

    #: Seconds unused after which a connection is checked before it is handed out.
    CHECK_AFTER_SECONDS = 1.0

    def __init__(
        self, url: str, *, name: str, timeout: float, settings: tuple[str, ...], row_factory: Any
    ) -> None:
        self._url = url
        self._name = name
        self._timeout = timeout
        self._settings = settings
        self._row_factory = row_factory
        # (connection or None when not open, when it was last given back); most recently
        # used first, so idle slots stay unopened.
        self._free: queue.LifoQueue[tuple[psycopg.Connection[Any] | None, float]]
        self._free = queue.LifoQueue()
        for _ in range(POOL_SIZE):
            self._free.put((None, 0.0))
        self._closed = False

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            row_factory=self._row_factory,
            connect_timeout=max(1, round(self._timeout)),
            application_name=self._name,
        )
        try:
            for statement in self._settings:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _usable(conn: psycopg.Connection[Any], idle: float, check_after: float) -> bool:
        if conn.closed or conn.broken:
            return False
        if idle < check_after:
            return True
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one statement or transaction (psycopg errors pass through)."""
        conn, since = self._free.get()
        try:
            if conn is not None and not self._usable(
                conn, time.monotonic() - since, self.CHECK_AFTER_SECONDS
            ):
                conn.close()
                conn = None
            if conn is None:
                conn = self._open()
            yield conn
        finally:
            if conn is not None and (self._closed or conn.broken):
                if conn.broken and not self._closed:
                    self._drop_idle()  # they were most likely to the same lost server
                conn.close()
                conn = None
            self._free.put((conn, time.monotonic()))

    def _drop_idle(self) -> None:
        idle = []
        while True:
            try:
                idle.append(self._free.get_nowait())
            except queue.Empty:
                break
        for conn, _ in idle:
            if conn is not None:
                conn.close()
            self._free.put((None, 0.0))

    def close(self) -> None:
        """Close the connections (one in use is closed when it comes back)."""
        self._closed = True
        self._drop_idle()


class _PgDb:
    """A psycopg connection seen as the rules see a connection: `?` placeholders."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self._conn.execute(sql.replace("?", "%s"), parameters)


class PgLedger(Ledger):
    """The write ledger on PostgreSQL (`url`: a postgresql:// URL)."""

    def __init__(self, url: str, *, clock: Now = time.time, connect_timeout: float = 5.0) -> None:
        self._clock = clock
        self._url = url
        self.path = redact_url(url)
        self._timeout = connect_timeout
        # This process's name in leases, and the session lock that says it is alive.
        self._token = secrets.token_hex(8)
        self.OWNER_PREFIX = f"pg:{self._token}:"
        self._alive_lock = threading.Lock()
        self._ended_lock = threading.Lock()
        self._ended: set[str] = set()
        self._alive: psycopg.Connection[tuple[Any, ...]] | None = None
        #: The backend process of the session that holds the lock.
        self._alive_pid = 0
        #: When that session had to be opened again after one was lost (monotonic; None:
        #: never lost).
        self._reconnected: float | None = None
        with self._alive_lock:
            # The first connection says plainly what is wrong (credentials, database,
            # reachability) and applies the migrations; it then holds the session lock.
            self._alive_connection()
        self._pool = Connections(
            url,
            name="tradavity-mcp",
            timeout=connect_timeout,
            # A lock held elsewhere for this long means something is stuck: say so.
            settings=("SET lock_timeout = '15s'", "SET statement_timeout = '30s'"),
            row_factory=dict_row,
        )

    # --- the connection ------------------------------------------------------------------

    def _explain(self, exc: BaseException) -> LedgerUnavailable:
        fix = store_problem(
            exc,
            self._url,
            f"the write ledger's store {self.path}",
            rights="create and write tables in its database",
            meanwhile="the server writes nothing until it is back",
        )
        return LedgerUnavailable(fix)

    def _alive_connection(self, *, lost: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection that holds this process's session lock (and applied the
        migrations), opened again, and the lock taken again, if it was lost (`lost`:
        known to be, though the driver has not noticed yet). Under `_alive_lock`."""
        conn = self._alive
        if conn is not None and not (lost or conn.closed or conn.broken):
            return conn
        if conn is not None:
            conn.close()
            self._alive = None
            self._reconnected = time.monotonic()
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(1, round(self._timeout)),
                application_name="tradavity-mcp",
            )
            migrate(conn)
            conn.execute("SELECT pg_advisory_lock(%s)", (_owner_key(self._token),))
        except psycopg.Error as exc:
            raise self._explain(exc) from None
        self._alive = conn
        self._alive_pid = conn.info.backend_pid
        return conn

    def _leasing(self, db: _Db) -> None:
        """In the transaction that takes or renews a lease: this process's session lock
        must be held, or another replica would take the lease for a dead one's."""
        unsigned = _owner_key(self._token) & 0xFFFF_FFFF_FFFF_FFFF
        held = db.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype='advisory' AND granted "
            "AND pid=? AND classid=? AND objid=? AND objsubid=1",
            (self._alive_pid, unsigned >> 32, unsigned & 0xFFFF_FFFF),
        ).fetchone()
        if not held["n"]:
            raise _SessionLost

    def _session_back(self) -> None:
        """Open the session lock's connection again (PostgreSQL restarted, or dropped it)."""
        with self._alive_lock:
            self._alive_connection(lost=True)

    def claim(
        self,
        draft: CallDraft,
        *,
        owner: str,
        lease_seconds: float,
        window: float | None = None,
    ) -> Claim:
        try:
            return super().claim(draft, owner=owner, lease_seconds=lease_seconds, window=window)
        except _SessionLost:
            self._session_back()
            return super().claim(draft, owner=owner, lease_seconds=lease_seconds, window=window)

    def renew(self, principal: str, tool: str, call_id: str, owner: str, seconds: float) -> bool:
        try:
            return super().renew(principal, tool, call_id, owner, seconds)
        except _SessionLost:
            self._session_back()
            return super().renew(principal, tool, call_id, owner, seconds)

    def schema_version(self) -> int:
        rows = self._read("SELECT max(version) AS v FROM schema_version", ())
        return int(rows[0]["v"] or 0)

    def close(self) -> None:
        self._pool.close()
        with self._alive_lock:
            if self._alive is not None:
                self._alive.close()
                self._alive = None

    @contextmanager
    def _tx(self, scope: str | None = None) -> Iterator[_Db]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                if scope is not None:
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        ("tradavity-ledger:" + scope,),
                    )
                yield _PgDb(conn)
        except psycopg.Error as exc:
            raise self._explain(exc) from None

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            with self._pool.connection() as conn:
                rows: list[Any] = conn.execute(query.replace("?", "%s"), params).fetchall()
                return rows
        except psycopg.Error as exc:
            raise self._explain(exc) from None

    # --- leases --------------------------------------------------------------------------

    def lease_alive(self, record: CallRecord) -> bool:
        """Held until it expires, unless its owner process is gone from the store (its
        session lock is free): then the call is free for another worker at once.

        Not when the lease was taken before PostgreSQL last started, nor within the
        grace after this process lost its own session (a restart or failover ended every
        session): its owner may be alive and not connected again yet."""
        if not record.owner or record.lease_until is None:
            return False
        if record.lease_until < self._clock() or self._worker_ended(record.owner):
            return False
        kind, _, rest = record.owner.partition(":")
        token = rest.partition(":")[0]
        if kind != "pg" or token == self._token:
            return True
        with self._alive_lock:
            held, before_start = self._owner_connected(token, record)
            reconnected = self._reconnected
        if held or before_start:
            return True
        return reconnected is not None and time.monotonic() - reconnected < RECONNECT_GRACE_SECONDS

    def _owner_connected(self, token: str, record: CallRecord) -> tuple[bool, bool]:
        """(whether the owner's session lock is held, whether the lease was taken before
        PostgreSQL last started), asked on the session lock's connection (opened again,
        once, if it was lost). Under `_alive_lock`."""
        # Take the owner's lock and give it back at once: granted means nobody holds it.
        query = (
            "SELECT CASE WHEN pg_try_advisory_lock(%(k)s) "
            "THEN NOT pg_advisory_unlock(%(k)s) ELSE true END, "
            "coalesce((SELECT leased_at < pg_postmaster_start_time() FROM calls "
            "WHERE principal=%(p)s AND tool=%(t)s AND call_id=%(c)s), false)"
        )
        params = {
            "k": _owner_key(token),
            "p": record.principal,
            "t": record.tool,
            "c": record.call_id,
        }
        conn = self._alive_connection()
        try:
            row = conn.execute(query, params).fetchone()
        except psycopg.Error as exc:
            if not conn.broken:
                raise self._explain(exc) from None
            # Lost (PostgreSQL restarted): opened again, once; the grace starts now.
            try:
                row = self._alive_connection().execute(query, params).fetchone()
            except psycopg.Error as again:
                raise self._explain(again) from None
        assert row is not None
        return bool(row[0]), bool(row[1])


class _SessionLost(Exception):
    """This process's session lock is not held (its session ended with a restart)."""


def _owner_key(token: str) -> int:
    """The advisory lock key of a process's token (a signed 64-bit number)."""
    return int.from_bytes(bytes.fromhex(token), "big", signed=True)
