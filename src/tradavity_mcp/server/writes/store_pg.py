"""The write ledger on PostgreSQL, for several replicas sharing one store (`--store`).

`PgLedger` keeps every rule of `ledger.Ledger` (the same SQL, run through a small adapter)
and changes only how it reaches the store:

* Each write transaction first takes a transaction-level advisory lock on the call's
  principal, so everything that decides about one user's calls (`claim`, leases, steps,
  finishing) is serialized across every replica, as `BEGIN IMMEDIATE` serializes
  processes sharing one SQLite file. Two replicas claiming twins therefore decide one
  after the other: one writes, the other sees its twin. The primary keys make a second
  row for one call impossible even so.
* A lease is free only when it has expired: a process id says nothing about a process
  on another machine.
* The tables come from versioned migrations shipped in the package
  (`migrations/NNNN_name.sql`), applied at start under an advisory lock and recorded in
  `schema_version`, so replicas starting together migrate once.
* A lost connection is opened again on the next use; every failure surfaces as
  `LedgerUnavailable`, naming the store (its URL without the password) and the fix.
"""

from __future__ import annotations

import re
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
from .ledger import CallRecord, Ledger, LedgerUnavailable, _Cursor, _Db

__all__ = ["PgLedger", "migrate", "migrations", "redact_url"]

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
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        with self._lock:
            self._migrate_store()

    # --- the connection ------------------------------------------------------------------

    def _explain(self, exc: BaseException) -> LedgerUnavailable:
        text = " ".join(str(exc).split())  # the driver's message, on one line
        password = urlsplit(self._url).password
        if password:
            text = text.replace(password, "***")
        folded = text.casefold()
        where = f"the write ledger's store {self.path}"
        if "password authentication" in folded or "authentication failed" in folded:
            fix = (
                f"{where} refused the credentials ({text.strip()}). Check the user and "
                "password in TRADAVITY_STORE_URL (--store)."
            )
        elif "does not exist" in folded and "database" in folded:
            fix = f"{where}: the database does not exist. Create it (createdb), or fix --store."
        elif "permission denied" in folded or "read-only" in folded:
            fix = (
                f"{where} refused a write ({text.strip()}). Give the user in "
                "TRADAVITY_STORE_URL rights to create and write tables in its database."
            )
        elif isinstance(exc, psycopg.OperationalError) or "connect" in folded:
            fix = (
                f"{where} cannot be reached ({text.strip()}). Check that PostgreSQL is "
                "running and reachable from this machine, and TRADAVITY_STORE_URL (--store); "
                "the server writes nothing until it is back."
            )
        else:
            fix = f"{where} could not be used ({text.strip()}). Check the store and --store."
        return LedgerUnavailable(fix + " Nothing was sent to Tradavity.")

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        """The open connection, opened again if it was lost (a restart, a failover)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, round(self._timeout)),
                application_name="tradavity-mcp",
            )
            # A lock held elsewhere for this long means something is stuck: say so.
            conn.execute("SET lock_timeout = '15s'")
            conn.execute("SET statement_timeout = '30s'")
        except psycopg.Error as exc:
            raise self._explain(exc) from None
        self._conn = conn
        return conn

    def _migrate_store(self) -> None:
        conn = self._connection()
        try:
            migrate(conn)
        except psycopg.Error as exc:
            raise self._explain(exc) from None

    def schema_version(self) -> int:
        rows = self._read("SELECT max(version) AS v FROM schema_version", ())
        return int(rows[0]["v"] or 0)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self, scope: str | None = None) -> Iterator[_Db]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    if scope is not None:
                        conn.execute(
                            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                            ("tradavity-ledger:" + scope,),
                        )
                    yield _PgDb(conn)
            except psycopg.Error as exc:
                raise self._explain(exc) from None

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(query.replace("?", "%s"), params).fetchall()
            except psycopg.Error as exc:
                raise self._explain(exc) from None

    # --- leases --------------------------------------------------------------------------

    def lease_alive(self, record: CallRecord) -> bool:
        """Held until it expires: the owner may be a process on another machine."""
        if not record.owner or record.lease_until is None:
            return False
        return record.lease_until >= self._clock()
