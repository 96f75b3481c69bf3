"""Grants, codes, tokens and registered clients, in SQLite beside the write ledger
(`PgOAuthStore` in `store_pg` keeps the same rules on PostgreSQL, for replicas).

Nothing secret is stored in clear: tokens, codes and consent requests are kept under
their SHA-256; the Tradavity key only sealed (`KeyBox.seal`), and known by its HMAC and
by its principal (the one-way name the write ledger files the user's calls under, so the
resumer finds the grant whose key finishes them). A grant is one user's consent for one
client and one resource; revoking it ends every token issued under it.

The rules are SQL both stores run alike. What must happen once (a consent approved, a
code redeemed, a refresh token rotated) is one conditional statement whose row count
says who won; what spans several statements (a grant and its code, a revocation) is one
transaction (`_tx`).

What strangers can make it keep is bounded (each value by `bounds`, the number of rows
here): consent requests expire after ten minutes, and past `max_pending` waiting for a
key the oldest of them give way to new ones (those where a user's key was checked are
kept); a registered client is forgotten a day after registration unless it completed
an authorization, and once none of its grants is live (`_IN_USE`). Each sweep runs on
an index, inside the insert that makes room.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .crypto import hash_token, new_token

__all__ = [
    "Checked",
    "Code",
    "Grant",
    "OAuthStore",
    "OAuthStoreUnavailable",
    "Pending",
    "Run",
    "TokenPair",
]

Kind = Literal["access", "refresh"]

#: Runs one statement (`?` placeholders) inside a transaction; returns its row count.
Run = Callable[[str, tuple[Any, ...]], int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, info TEXT NOT NULL, created REAL NOT NULL,
    registered_from TEXT);
CREATE TABLE IF NOT EXISTS pending (
    id_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, info TEXT NOT NULL, expires REAL NOT NULL,
    checked TEXT, key_sealed BLOB, browser TEXT);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, client_name TEXT NOT NULL,
    user_label TEXT NOT NULL, key_mac TEXT NOT NULL, key_sealed BLOB NOT NULL,
    scopes TEXT NOT NULL, resource TEXT NOT NULL, created REAL NOT NULL,
    last_used REAL, revoked REAL, principal TEXT);
CREATE TABLE IF NOT EXISTS codes (
    hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL, info TEXT NOT NULL,
    expires REAL NOT NULL, used REAL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL, kind TEXT NOT NULL,
    expires REAL NOT NULL, used REAL);
"""

#: Columns added to a table since it was first shipped, (table, column, type): a store
#: file made before gets them when it is opened. (PostgreSQL: `migrations/`.)
_ADDED_COLUMNS = (
    ("clients", "registered_from", "TEXT"),
    ("pending", "browser", "TEXT"),
    ("grants", "principal", "TEXT"),
)

_INDEXES = """
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens(grant_id);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending(expires);
CREATE INDEX IF NOT EXISTS codes_by_expiry ON codes(expires);
CREATE INDEX IF NOT EXISTS clients_by_created ON clients(created);
CREATE INDEX IF NOT EXISTS clients_by_origin ON clients(registered_from);
CREATE INDEX IF NOT EXISTS grants_by_client ON grants(client_id);
CREATE INDEX IF NOT EXISTS grants_principal ON grants(principal);
"""

#: How long a registered client that never completed an authorization is kept.
CLIENT_UNUSED_SECONDS = 86400.0
#: Consent requests waiting for a key, at most (`OAuthStore(max_pending=)`).
MAX_PENDING = 1000

#: A client that completed an authorization still in use: one of its grants is not
#: revoked, and is younger than a day (its code may yet be redeemed) or holds a token
#: not yet expired. Arguments: the day's cutoff, now.
_LIVE_GRANT = (
    "EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id"
    " AND g.revoked IS NULL AND (g.created >= ? OR EXISTS (SELECT 1 FROM tokens t"
    " WHERE t.grant_id = g.id AND t.expires >= ?)))"
)
#: A client kept: registered less than a day ago, or with a live grant. Arguments: the
#: day's cutoff, the day's cutoff, now.
_IN_USE = f"(clients.created >= ? OR {_LIVE_GRANT})"

# The statements that keep the bounds, each on an index (tests read their plans).
#: Clients no longer in use. Arguments: the day's cutoff, then `_IN_USE`'s.
_SWEEP_CLIENTS = f"DELETE FROM clients WHERE created < ? AND NOT {_IN_USE}"  # noqa: S608
#: A client still in use. Arguments: its id, then `_IN_USE`'s.
_CLIENT = f"SELECT info FROM clients WHERE client_id = ? AND {_IN_USE}"  # noqa: S608
#: Whether an address (its MAC) registered a client with a live grant. Arguments: the
#: MAC, then `_LIVE_GRANT`'s.
_PROVEN = f"SELECT 1 FROM clients WHERE registered_from = ? AND {_LIVE_GRANT}"  # noqa: S608
#: Consent requests expired. Argument: now.
_SWEEP_PENDING = "DELETE FROM pending WHERE expires < ?"
#: Past the bound of consent requests waiting for a key, the oldest (nothing when fewer:
#: the subquery is NULL). Argument: the bound less one.
_EVICT_PENDING = (
    "DELETE FROM pending WHERE checked IS NULL AND expires < (SELECT expires FROM pending"
    " WHERE checked IS NULL ORDER BY expires DESC LIMIT 1 OFFSET ?)"
)


class OAuthStoreUnavailable(Exception):
    """The store cannot be reached or used; the message names it (never its password)
    and the fix."""


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for the user's consent."""

    client_id: str
    client_name: str
    redirect_uri: str
    redirect_explicit: bool
    code_challenge: str
    state: str | None
    resource: str
    scopes: list[str] | None


@dataclass(frozen=True)
class Checked:
    """The key a user typed on the consent page, checked and sealed, awaiting approval."""

    user_label: str
    key_mac: str
    key_sealed: bytes
    scopes: list[str]
    #: The browser it was typed in (an HMAC of its consent cookie): the only one that may
    #: then allow or cancel the request. Empty for a grant made without the page (tests).
    browser: str = ""
    #: `principal_for_key` of the key.
    principal: str | None = None


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    client_name: str
    user_label: str
    key_mac: str
    key_sealed: bytes
    scopes: tuple[str, ...]
    resource: str
    created: float
    last_used: float | None
    revoked: float | None
    #: `principal_for_key` of the key (None: a grant made before it was recorded; "":
    #: its key could not be opened to find it).
    principal: str | None = None


@dataclass(frozen=True)
class Code:
    grant_id: str
    client_id: str
    redirect_uri: str
    redirect_explicit: bool
    code_challenge: str
    resource: str
    scopes: tuple[str, ...]
    expires: float
    used: float | None


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


class OAuthStore:
    """The authorization server's state. Short synchronous statements under one lock
    (the server runs them in worker threads: `offload.AsyncOAuthStore`)."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        access_ttl: float = 3600.0,
        refresh_ttl: float = 30 * 86400.0,
        code_ttl: float = 120.0,
        pending_ttl: float = 600.0,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Owner-only, like the secret: it holds sealed keys (SQLite gives its -wal and
            # -shm files the same mode).
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
        self.where = str(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        self._db.executescript(_INDEXES)
        self._lock = threading.Lock()
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.code_ttl = code_ttl
        self.pending_ttl = pending_ttl
        self.max_pending = max_pending

    def _add_columns(self) -> None:
        """Bring a store file made by an earlier version up to `_ADDED_COLUMNS`."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, kind in _ADDED_COLUMNS:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # how statements reach the store (`PgOAuthStore` overrides these four)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """One statement on its own; its row count."""
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _list(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    @contextmanager
    def _tx(self) -> Iterator[Run]:
        """Statements that stand or fall together."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, args: self._db.execute(sql, args).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # clients registered dynamically (metadata-document clients are fetched, not stored)

    def add_client(
        self, client_id: str, info: dict[str, Any], registered_from: str | None = None
    ) -> None:
        """Register a client; `registered_from`: the registering address, as a one-way
        MAC (see `proven`). Clients no longer in use are forgotten meanwhile."""
        now = self.clock()
        cutoff = now - CLIENT_UNUSED_SECONDS
        with self._tx() as run:
            run(_SWEEP_CLIENTS, (cutoff, cutoff, cutoff, now))
            run(
                "INSERT INTO clients (client_id, info, created, registered_from)"
                " VALUES (?, ?, ?, ?)",
                (client_id, json.dumps(info), now, registered_from),
            )

    def client(self, client_id: str) -> dict[str, Any] | None:
        """A registered client still in use (one not yet swept is not either)."""
        now = self.clock()
        cutoff = now - CLIENT_UNUSED_SECONDS
        row = self._one(_CLIENT, (client_id, cutoff, cutoff, now))
        return json.loads(row[0]) if row else None

    def proven(self, registered_from: str) -> bool:
        """Whether a client registered from this address (its MAC) completed an
        authorization that is still live: then more registrations from there are not
        held to the registrations' total."""
        now = self.clock()
        row = self._one(_PROVEN, (registered_from, now - CLIENT_UNUSED_SECONDS, now))
        return row is not None

    # consent requests

    def add_pending(self, pending: Pending) -> str:
        request_id = new_token()
        now = self.clock()
        with self._tx() as run:
            run(_SWEEP_PENDING, (now,))
            run(
                "INSERT INTO pending (id_hash, client_id, info, expires) VALUES (?, ?, ?, ?)",
                (
                    hash_token(request_id),
                    pending.client_id,
                    json.dumps(pending.__dict__),
                    now + self.pending_ttl,
                ),
            )
            run(_EVICT_PENDING, (self.max_pending - 1,))
        return request_id

    def pending(self, request_id: str) -> Pending | None:
        row = self._one(
            "SELECT info FROM pending WHERE id_hash = ? AND expires >= ?",
            (hash_token(request_id), self.clock()),
        )
        return Pending(**json.loads(row[0])) if row else None

    def check_pending(self, request_id: str, checked: Checked) -> bool:
        """Remember the checked (sealed) key of a consent request until it is approved,
        and the browser it was typed in. The first browser to check a key keeps the
        request: it may check another, but no other browser may replace it (False)."""
        info = {
            "user_label": checked.user_label,
            "key_mac": checked.key_mac,
            "scopes": checked.scopes,
            "principal": checked.principal,
        }
        done = self._run(
            "UPDATE pending SET checked = ?, key_sealed = ?, browser = ? WHERE id_hash = ?"
            " AND expires >= ? AND (browser IS NULL OR browser = ?)",
            (
                json.dumps(info),
                checked.key_sealed,
                checked.browser,
                hash_token(request_id),
                self.clock(),
                checked.browser,
            ),
        )
        return done == 1

    def checked(self, request_id: str) -> Checked | None:
        row = self._one(
            "SELECT checked, key_sealed, browser FROM pending WHERE id_hash = ? AND expires >= ?",
            (hash_token(request_id), self.clock()),
        )
        if row is None or row[0] is None:
            return None
        info = json.loads(row[0])
        return Checked(
            user_label=info["user_label"],
            key_mac=info["key_mac"],
            key_sealed=bytes(row[1]),
            scopes=list(info["scopes"]),
            browser=row[2] or "",
            principal=info.get("principal"),
        )

    def take_pending(self, request_id: str, browser: str | None = None) -> bool:
        """Consume a consent request (once: a second approval of it gets nothing). With
        `browser`, only if no key was checked for it yet or this browser checked it."""
        sql = "DELETE FROM pending WHERE id_hash = ?"
        args: tuple[str, ...] = (hash_token(request_id),)
        if browser is not None:
            sql, args = sql + " AND (browser IS NULL OR browser = ?)", (*args, browser)
        return self._run(sql, args) == 1

    # grants and codes

    def add_grant(self, pending: Pending, checked: Checked) -> str:
        """A grant for this consent, and its authorization code."""
        grant_id = uuid.uuid4().hex
        now = self.clock()
        code = new_token()
        info = {
            "client_id": pending.client_id,
            "redirect_uri": pending.redirect_uri,
            "redirect_explicit": pending.redirect_explicit,
            "code_challenge": pending.code_challenge,
            "resource": pending.resource,
            "scopes": sorted(checked.scopes),
        }
        with self._tx() as run:
            # Spent and expired codes are kept a day (a code presented again still revokes).
            run("DELETE FROM codes WHERE expires < ?", (now - 86400.0,))
            run(
                "INSERT INTO grants (id, client_id, client_name, user_label, key_mac, key_sealed,"
                " scopes, resource, created, principal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    grant_id,
                    pending.client_id,
                    pending.client_name,
                    checked.user_label,
                    checked.key_mac,
                    checked.key_sealed,
                    " ".join(sorted(checked.scopes)),
                    pending.resource,
                    now,
                    checked.principal,
                ),
            )
            run(
                "INSERT INTO codes (hash, grant_id, info, expires) VALUES (?, ?, ?, ?)",
                (hash_token(code), grant_id, json.dumps(info), now + self.code_ttl),
            )
        return code

    def code(self, code: str) -> Code | None:
        row = self._one(
            "SELECT grant_id, info, expires, used FROM codes WHERE hash = ?", (hash_token(code),)
        )
        if row is None:
            return None
        info = json.loads(row[1])
        return Code(
            grant_id=row[0],
            client_id=info["client_id"],
            redirect_uri=info["redirect_uri"],
            redirect_explicit=info["redirect_explicit"],
            code_challenge=info["code_challenge"],
            resource=info["resource"],
            scopes=tuple(info["scopes"]),
            expires=row[2],
            used=row[3],
        )

    def use_code(self, code: str) -> bool:
        """Mark a code used; False when it already was (then the caller revokes)."""
        done = self._run(
            "UPDATE codes SET used = ? WHERE hash = ? AND used IS NULL",
            (self.clock(), hash_token(code)),
        )
        return done == 1

    def grant(self, grant_id: str) -> Grant | None:
        row = self._one(
            "SELECT id, client_id, client_name, user_label, key_mac, key_sealed, scopes,"
            " resource, created, last_used, revoked, principal FROM grants WHERE id = ?",
            (grant_id,),
        )
        if row is None:
            return None
        return Grant(
            id=row[0],
            client_id=row[1],
            client_name=row[2],
            user_label=row[3],
            key_mac=row[4],
            key_sealed=bytes(row[5]),
            scopes=tuple(row[6].split()) if row[6] else (),
            resource=row[7],
            created=row[8],
            last_used=row[9],
            revoked=row[10],
            principal=row[11],
        )

    def live_grants_of(self, principal: str) -> list[Grant]:
        """The live grants holding the key of `principal`, the most recently used first."""
        ids = self._list(
            "SELECT id FROM grants WHERE principal = ? AND revoked IS NULL"
            " ORDER BY coalesce(last_used, created) DESC",
            (principal,),
        )
        return [g for g in (self.grant(r[0]) for r in ids) if g is not None]

    def unnamed_grants(self) -> list[tuple[str, bytes]]:
        """(id, sealed key) of the live grants whose principal is not recorded (made by
        an older version)."""
        rows = self._list(
            "SELECT id, key_sealed FROM grants WHERE principal IS NULL AND revoked IS NULL"
        )
        return [(r[0], bytes(r[1])) for r in rows]

    def name_grant(self, grant_id: str, principal: str) -> None:
        """Record a grant's principal ("" when its key cannot be opened)."""
        self._run(
            "UPDATE grants SET principal = ? WHERE id = ? AND principal IS NULL",
            (principal, grant_id),
        )

    def grants(self, *, include_revoked: bool = False) -> list[Grant]:
        sql = "SELECT id FROM grants ORDER BY created"
        if not include_revoked:
            sql = "SELECT id FROM grants WHERE revoked IS NULL ORDER BY created"
        ids = [r[0] for r in self._list(sql)]
        return [g for g in (self.grant(i) for i in ids) if g is not None]

    def revoke(self, grant_id: str) -> bool:
        """End a grant and every token under it. False when there was none live."""
        now = self.clock()
        with self._tx() as run:
            done = run(
                "UPDATE grants SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, grant_id)
            )
            run("DELETE FROM tokens WHERE grant_id = ?", (grant_id,))
            run("DELETE FROM codes WHERE grant_id = ?", (grant_id,))
        return done == 1

    def revoke_all(self) -> int:
        """End every live grant and its tokens; how many grants were live."""
        now = self.clock()
        with self._tx() as run:
            done = run("UPDATE grants SET revoked = ? WHERE revoked IS NULL", (now,))
            run("DELETE FROM tokens", ())
            run("DELETE FROM codes", ())
        self.forget_secret()
        return done

    def touch(self, grant_id: str) -> None:
        """Note the grant's use (at most once a minute: every request of its user lands here)."""
        now = self.clock()
        self._run(
            "UPDATE grants SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)",
            (now, grant_id, now - 60.0),
        )

    # tokens

    def issue(self, grant_id: str) -> TokenPair:
        with self._tx() as run:
            return self._issue(run, grant_id)

    def _issue(self, run: Run, grant_id: str) -> TokenPair:
        access, refresh = new_token(), new_token()
        now = self.clock()
        run("DELETE FROM tokens WHERE grant_id = ? AND expires < ?", (grant_id, now))
        for token, kind, ttl in (
            (access, "access", self.access_ttl),
            (refresh, "refresh", self.refresh_ttl),
        ):
            run(
                "INSERT INTO tokens (hash, grant_id, kind, expires) VALUES (?, ?, ?, ?)",
                (hash_token(token), grant_id, kind, now + ttl),
            )
        return TokenPair(access=access, refresh=refresh, expires_in=int(self.access_ttl))

    def token(self, token: str, kind: Kind) -> tuple[str, float, float | None] | None:
        """(grant id, expiry, used at) of a token of this kind, expired or not."""
        row = self._one(
            "SELECT grant_id, expires, used FROM tokens WHERE hash = ? AND kind = ?",
            (hash_token(token), kind),
        )
        return (row[0], row[1], row[2]) if row else None

    def rotate(self, token: str, grant_id: str) -> TokenPair | None:
        """Spend a refresh token of a live grant and issue the next pair, in one
        transaction; None when it was spent already (or its grant ended). Of several
        rotating one token at once, on any replica, exactly one gets a pair."""
        with self._tx() as run:
            spent = run(
                "UPDATE tokens SET used = ? WHERE hash = ? AND kind = 'refresh' AND used IS NULL"
                " AND grant_id = ? AND grant_id IN (SELECT id FROM grants WHERE revoked IS NULL)",
                (self.clock(), hash_token(token), grant_id),
            )
            return self._issue(run, grant_id) if spent == 1 else None

    # the secret the keys are sealed with

    def check_secret(self, fingerprint: str) -> bool:
        """Whether the server's secret is the one the store's keys were sealed with.

        SQLite's store belongs to one server, whose secret may change (its grants then
        stop opening, and users connect again): nothing to check. The shared store
        (`PgOAuthStore`) refuses a replica whose secret differs from the others'."""
        return True

    def forget_secret(self) -> None:
        """Forget the secret's fingerprint (once no grant sealed under it is live)."""

    def dump(self) -> list[tuple[Any, ...]]:
        """Every row of every table (for tests that look for secrets in clear)."""
        out: list[tuple[Any, ...]] = []
        for table in ("clients", "pending", "grants", "codes", "tokens"):
            out.extend(self._list(f"SELECT * FROM {table}"))  # noqa: S608
        return out
