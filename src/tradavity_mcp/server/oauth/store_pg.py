"""The OAuth authorization server's state on PostgreSQL (`--store`), shared by replicas.

`PgOAuthStore` keeps every rule of `store.OAuthStore` (the same SQL) and changes only how
it reaches the store, so a consent started on one replica is finished on another, a code
issued by one is redeemed on another, and a revocation is seen by all at once:

* What happens once is one conditional statement (`UPDATE ... WHERE used IS NULL`,
  `DELETE` of a consent request): PostgreSQL locks the row, and a second replica's
  statement, waiting behind the first, sees it spent and changes nothing. A code is
  redeemed once; of two replicas rotating one refresh token, one wins.
* Statements that stand together (a grant and its code, a revocation and the tokens it
  ends) run in one transaction.
* The tables live in the schema `tradavity_oauth`, made by versioned migrations shipped
  in `migrations/` and applied at start by the ledger's runner (`writes.store_pg.migrate`).
* Keys are sealed as on SQLite, with `TRADAVITY_MCP_SECRET_KEY`, which every replica must
  share: the store keeps the secret's fingerprint (an HMAC) and refuses a replica
  started with another one (`check_secret`).
* Statements go through a few connections (`writes.store_pg.Connections`), so a row
  locked by another replica holds one, not every token check of this one. A lost
  connection is opened again on the next use; every failure surfaces as
  `OAuthStoreUnavailable`, naming the store without its password.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from ..writes.store_pg import Connections, migrate, migrations, redact_url, store_problem
from .store import MAX_PENDING, OAuthStore, OAuthStoreUnavailable, Run

__all__ = ["SCHEMA", "PgOAuthStore", "oauth_migrations"]

#: The PostgreSQL schema of the OAuth tables (the ledger's stay in the default one).
SCHEMA = "tradavity_oauth"


def oauth_migrations() -> list[tuple[int, str, str]]:
    """The OAuth store's shipped migrations, (version, file name, SQL), in order."""
    return migrations(__package__)


def _pg(sql: str) -> bytes:
    """A rule's statement for psycopg: `%s` placeholders (the rules use no `%`)."""
    return sql.replace("?", "%s").encode("utf-8")


class PgOAuthStore(OAuthStore):
    """`OAuthStore` on PostgreSQL (`url`: a postgresql:// URL)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        access_ttl: float = 3600.0,
        refresh_ttl: float = 30 * 86400.0,
        code_ttl: float = 120.0,
        pending_ttl: float = 600.0,
        max_pending: int = MAX_PENDING,
        connect_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self.where = redact_url(url)
        self._timeout = connect_timeout
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.code_ttl = code_ttl
        self.pending_ttl = pending_ttl
        self.max_pending = max_pending
        # The first connection says plainly what is wrong and applies the migrations.
        with self._failures(), self._connect() as conn:
            migrate(conn, __package__, SCHEMA)
        # Then a few connections: a row locked by another replica holds one, not every
        # token check of this one.
        self._pool = Connections(
            url,
            name="tradavity-mcp oauth",
            timeout=connect_timeout,
            # A lock held elsewhere for this long means something is stuck: say so.
            settings=(
                f"SET search_path TO {SCHEMA}",
                "SET lock_timeout = '10s'",
                "SET statement_timeout = '20s'",
            ),
            row_factory=tuple_row,
        )

    # --- the connection ------------------------------------------------------------------

    def _explain(self, exc: BaseException) -> OAuthStoreUnavailable:
        return OAuthStoreUnavailable(
            store_problem(
                exc,
                self._url,
                f"the OAuth store {self.where}",
                rights="create a schema and tables in its database",
                meanwhile="sign-ins and token checks wait until it is back",
            )
        )

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise self._explain(exc) from None

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, round(self._timeout)),
            application_name="tradavity-mcp oauth",
        )

    def close(self) -> None:
        self._pool.close()

    def schema_version(self) -> int:
        row = self._one("SELECT max(version) FROM schema_version")
        return int(row[0] or 0) if row else 0

    # --- how the rules' statements reach the store ---------------------------------------

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._failures(), self._pool.connection() as conn:
            return conn.execute(_pg(sql), args).rowcount

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._failures(), self._pool.connection() as conn:
            return conn.execute(_pg(sql), args).fetchone()

    def _list(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._failures(), self._pool.connection() as conn:
            return conn.execute(_pg(sql), args).fetchall()

    @contextmanager
    def _tx(self) -> Iterator[Run]:
        with self._failures(), self._pool.connection() as conn, conn.transaction():
            yield lambda sql, args: conn.execute(_pg(sql), args).rowcount

    # --- the shared secret ---------------------------------------------------------------

    def check_secret(self, fingerprint: str) -> bool:
        """Record the secret's fingerprint if the store has none; False when it holds
        another one (this replica's secret cannot open the keys the others sealed)."""
        self._run(
            "INSERT INTO secret (one, check_mac, created) VALUES (true, ?, ?)"
            " ON CONFLICT (one) DO NOTHING",
            (fingerprint, self.clock()),
        )
        row = self._one("SELECT check_mac FROM secret")
        return row is not None and row[0] == fingerprint

    def forget_secret(self) -> None:
        self._run("DELETE FROM secret")
