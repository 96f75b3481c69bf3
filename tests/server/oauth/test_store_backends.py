"""The OAuth store's rules on both stores: SQLite (a file) and PostgreSQL (a real server
started by the test session). Every scenario opens its stores through `store`, so
"another replica" is a second connection to the same store, opened as a server opens it.

The PostgreSQL scenarios share one database per module and start from none of the
store's tables (its schema and the ledger's tables dropped before each): as fresh as a
new database, without paying for one per test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp.server.auth.provider import TokenError
from mcp.shared.auth import OAuthClientInformationFull
from psycopg import ClientCursor

from tradavity_mcp.server.oauth.bounds import (
    CODE_CHALLENGE_LENGTH,
    MAX_CLIENT_NAME,
    MAX_SCOPE,
    MAX_STATE,
    MAX_URL,
)
from tradavity_mcp.server.oauth.clients import ClientDocuments
from tradavity_mcp.server.oauth.crypto import KeyBox
from tradavity_mcp.server.oauth.offload import AsyncOAuthStore
from tradavity_mcp.server.oauth.provider import TradavityProvider
from tradavity_mcp.server.oauth.store import (
    _CLIENT,
    _EVICT_PENDING,
    _PROVEN,
    _SWEEP_CLIENTS,
    _SWEEP_PENDING,
    CLIENT_UNUSED_SECONDS,
    Checked,
    OAuthStore,
    OAuthStoreUnavailable,
    Pending,
)
from tradavity_mcp.server.oauth.store_pg import SCHEMA, PgOAuthStore, oauth_migrations
from tradavity_mcp.server.oauth.stores import open_oauth_store
from tradavity_mcp.server.writes.store_pg import Connections, PgLedger, migrations

pytestmark = pytest.mark.anyio

KEY = "tvty_" + "ab" * 24
BOX = KeyBox("s" * 40)
#: Two browsers' consent cookies, as the consent page keeps them: by their HMAC.
COOKIE, OTHER_COOKIE = "cookie-of-the-users-browser", "cookie-of-another-browser"
USERS_BROWSER, OTHER_BROWSER = BOX.mac("browser", COOKIE), BOX.mac("browser", OTHER_COOKIE)
RESOURCE = "https://mcp.example.com/mcp"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


#: Opens a store on the test's store (a clock; store options, such as `max_pending`).
Open = Callable[..., OAuthStore]


@pytest.fixture(scope="module")
def pg_database(postgres_server: str) -> Iterator[str]:
    name = f"oauth_store_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    yield postgres_server.rpartition("/")[0] + "/" + name
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The module's database with none of the store's (or the ledger's) tables."""
    with psycopg.connect(pg_database, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE".encode())
        db.execute("DROP TABLE IF EXISTS schema_version, calls, steps, blobs")
    return pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """Opens a store (a new connection: another replica) on this test's store."""
    opened: list[OAuthStore] = []
    url: str | None = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")

    def open_one(clock: Clock, **options: Any) -> OAuthStore:
        opened.append(open_oauth_store(store_url=url, state_dir=tmp_path, clock=clock, **options))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


def _pending(client_id: str = "c1") -> Pending:
    return Pending(
        client_id=client_id,
        client_name="Claude",
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        redirect_explicit=True,
        code_challenge="challenge",
        state="st",
        resource=RESOURCE,
        scopes=None,
    )


def _checked(key: str = KEY, browser: str = USERS_BROWSER) -> Checked:
    return Checked(
        user_label="dana@example.com",
        key_mac=BOX.mac("key", key),
        key_sealed=BOX.seal(key),
        scopes=["write:trades", "read:trades"],
        browser=browser,
    )


def _provider(store: OAuthStore, clock: Clock) -> TradavityProvider:
    return TradavityProvider(
        AsyncOAuthStore(store),
        BOX,
        ClientDocuments(),
        issuer="https://mcp.example.com",
        resource=RESOURCE,
        redirect_hosts=(),
        clock=clock,
    )


def _client(client_id: str = "c1") -> OAuthClientInformationFull:
    return OAuthClientInformationFull.model_validate(
        {"client_id": client_id, "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}
    )


def test_a_consent_started_on_one_replica_is_finished_on_another(store: Open) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    a.add_client("c1", {"client_id": "c1", "client_name": "Claude"})
    assert b.client("c1") == {"client_id": "c1", "client_name": "Claude"}
    assert b.client("c2") is None
    request_id = a.add_pending(_pending())
    assert b.pending(request_id) == _pending()
    assert b.checked(request_id) is None  # no key typed yet
    assert b.check_pending(request_id, _checked())
    checked = a.checked(request_id)
    assert checked is not None
    assert BOX.open(checked.key_sealed) == KEY
    assert checked.scopes == ["write:trades", "read:trades"]
    assert checked.browser == USERS_BROWSER
    # Approved once: a second approval, on either replica, gets nothing.
    assert a.take_pending(request_id)
    assert not b.take_pending(request_id)
    assert not a.take_pending(request_id)
    assert b.pending(request_id) is None


def test_a_consent_request_belongs_to_the_browser_that_checked_a_key(store: Open) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    request_id = a.add_pending(_pending())
    assert a.check_pending(request_id, _checked())
    # Another browser (on either replica) can neither replace the key nor take the request.
    other_key = "tvty_" + "cd" * 24
    assert not b.check_pending(request_id, _checked(other_key, OTHER_BROWSER))
    assert not a.take_pending(request_id, OTHER_BROWSER)
    assert not b.take_pending(request_id, OTHER_BROWSER)
    checked = b.checked(request_id)
    assert checked is not None
    assert (BOX.open(checked.key_sealed), checked.browser) == (KEY, USERS_BROWSER)
    # The browser that checked it may check another key, then take it, once.
    assert b.check_pending(request_id, _checked(other_key))
    checked = a.checked(request_id)
    assert checked is not None
    assert BOX.open(checked.key_sealed) == other_key
    assert b.take_pending(request_id, USERS_BROWSER)
    assert not a.take_pending(request_id, USERS_BROWSER)
    assert not a.check_pending(request_id, _checked())  # gone: nothing to check
    # Before any key is checked, any browser holding the request may cancel it.
    unclaimed = a.add_pending(_pending())
    assert b.take_pending(unclaimed, OTHER_BROWSER)


def test_an_expired_request_takes_no_key(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    request_id = a.add_pending(_pending())
    clock.now += a.pending_ttl + 1
    assert not a.check_pending(request_id, _checked())


def test_a_store_made_before_requests_kept_their_browser_gets_the_column(
    tmp_path: Path,
) -> None:
    """A SQLite file from before: its pending table gains the browser column, and a
    request waiting in it then binds to a browser like a new one."""
    path = tmp_path / "old" / "oauth.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE pending (id_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL,"
            " info TEXT NOT NULL, expires REAL NOT NULL, checked TEXT, key_sealed BLOB)"
        )
    clock = Clock()
    store = open_oauth_store(store_url=None, state_dir=tmp_path, store_path=path, clock=clock)
    try:
        request_id = store.add_pending(_pending())
        assert store.check_pending(request_id, _checked())
        assert not store.check_pending(request_id, _checked(browser=OTHER_BROWSER))
        checked = store.checked(request_id)
        assert checked is not None
        assert checked.browser == USERS_BROWSER
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(pending)")]
    assert columns[-1] == "browser"


def test_a_consent_request_expires(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    request_id = a.add_pending(_pending())
    clock.now += a.pending_ttl + 1
    assert a.pending(request_id) is None
    assert store(clock).checked(request_id) is None


def test_a_code_is_redeemed_once_across_replicas(store: Open) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    code = a.add_grant(_pending(), _checked())
    found = b.code(code)
    assert found is not None
    assert (found.client_id, found.used, found.expires) == ("c1", None, clock.now + a.code_ttl)
    assert found.scopes == ("read:trades", "write:trades")
    assert b.use_code(code)
    assert not a.use_code(code)
    spent = a.code(code)
    assert spent is not None
    assert spent.used == clock.now
    assert a.code("not-a-code") is None


def test_tokens_rotate_once_and_a_revocation_is_seen_at_once(store: Open) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    a.add_grant(_pending(), _checked())
    (grant,) = b.grants()
    pair = a.issue(grant.id)
    assert b.token(pair.access, "access") == (grant.id, clock.now + a.access_ttl, None)
    assert b.token(pair.access, "refresh") is None  # a token is only what it was issued as
    assert b.rotate(pair.access, grant.id) is None  # an access token is not a refresh token
    assert a.rotate(pair.refresh, "another-grant") is None
    fresh = b.rotate(pair.refresh, grant.id)
    assert fresh is not None
    assert a.rotate(pair.refresh, grant.id) is None  # once
    assert a.token(pair.refresh, "refresh") == (grant.id, clock.now + a.refresh_ttl, clock.now)
    assert a.token(fresh.refresh, "refresh") == (grant.id, clock.now + a.refresh_ttl, None)
    assert a.revoke(grant.id)
    assert not b.revoke(grant.id)  # once
    after = b.grant(grant.id)
    assert after is not None
    assert after.revoked == clock.now
    assert b.token(fresh.access, "access") is None
    assert b.token(fresh.refresh, "refresh") is None
    assert b.rotate(pair.refresh, grant.id) is None  # nothing rotates under a revoked grant
    assert a.grants() == []
    assert [g.id for g in b.grants(include_revoked=True)] == [grant.id]


def test_grants_list_in_order_and_end_together(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    a.add_grant(_pending("c1"), _checked())
    clock.now += 1
    a.add_grant(_pending("c2"), _checked("tvty_" + "cd" * 24))
    first, second = store(clock).grants()
    assert (first.client_id, second.client_id) == ("c1", "c2")
    assert first.key_mac == BOX.mac("key", KEY)
    assert first.scopes == ("read:trades", "write:trades")
    assert (first.resource, first.user_label, first.client_name) == (
        RESOURCE,
        "dana@example.com",
        "Claude",
    )
    tokens = a.issue(second.id)
    assert store(clock).revoke_all() == 2
    assert a.grants() == []
    assert a.token(tokens.access, "access") is None


def test_a_grants_use_is_noted_at_most_once_a_minute(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    a.add_grant(_pending(), _checked())
    (grant,) = a.grants()
    assert grant.last_used is None
    start = clock.now
    a.touch(grant.id)
    clock.now += 30
    store(clock).touch(grant.id)
    assert (g := a.grant(grant.id)) is not None
    assert g.last_used == start
    clock.now += 31
    a.touch(grant.id)
    assert (g := a.grant(grant.id)) is not None
    assert g.last_used == clock.now


def test_nothing_secret_is_stored_in_clear(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    request_id = a.add_pending(_pending())
    a.check_pending(request_id, _checked())
    code = a.add_grant(_pending(), _checked())
    (grant,) = a.grants()
    pair = a.issue(grant.id)
    rows = repr(store(clock).dump())
    for secret in (KEY, KEY[5:], request_id, code, pair.access, pair.refresh, COOKIE):
        assert secret not in rows
    assert BOX.mac("key", KEY) in rows  # known by its HMAC only


def _info(client_id: str) -> dict[str, Any]:
    return {"client_id": client_id, "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}


def _client_ids(store: OAuthStore) -> set[str]:
    return {row[0] for row in store._list("SELECT client_id FROM clients")}


def test_a_registration_unused_for_a_day_disappears(store: Open) -> None:
    clock = Clock()
    a = store(clock)
    for client_id in ("unused", "used", "ended"):
        a.add_client(client_id, _info(client_id))
    # "used" completes an authorization and holds tokens; "ended" does, then is revoked.
    for client_id in ("used", "ended"):
        found = a.code(a.add_grant(_pending(client_id), _checked()))
        assert found is not None
        a.issue(found.grant_id)
        if client_id == "ended":
            a.revoke(found.grant_id)
    clock.now += CLIENT_UNUSED_SECONDS - 1
    assert all(a.client(c) is not None for c in ("unused", "used", "ended")), "a day to use"
    clock.now += 2
    assert a.client("unused") is None
    assert a.client("ended") is None
    assert a.client("used") == _info("used")
    # Gone from the store when another replica registers the next client.
    b = store(clock)
    b.add_client("next", _info("next"))
    assert _client_ids(b) == {"used", "next"}
    # Once its last refresh token expired unused, the used one goes too.
    clock.now += a.refresh_ttl + 1
    assert b.client("used") is None
    b.add_client("later", _info("later"))
    assert _client_ids(a) == {"later"}


def test_an_address_is_proven_while_a_client_it_registered_holds_a_live_grant(
    store: Open,
) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    a.add_client("c1", _info("c1"), "mac-of-address-1")
    b.add_client("c2", _info("c2"), "mac-of-address-2")
    assert not b.proven("mac-of-address-1"), "registered, never authorized"
    code = b.add_grant(_pending("c1"), _checked())
    assert b.proven("mac-of-address-1")
    assert not a.proven("mac-of-address-2")
    found = a.code(code)
    assert found is not None
    a.revoke(found.grant_id)
    assert not b.proven("mac-of-address-1"), "its grant ended"


def test_consent_requests_past_the_bound_give_way_oldest_first(store: Open) -> None:
    clock = Clock()
    a, b = store(clock, max_pending=5), store(clock, max_pending=5)
    requests = []
    for n in range(8):
        requests.append((a if n % 2 else b).add_pending(_pending()))
        clock.now += 1
        if n == 4:
            # A user typed their key into the oldest: it is not given way.
            a.check_pending(requests[0], _checked())
    alive = [a.pending(r) is not None for r in requests]
    assert alive == [True, False, False, True, True, True, True, True]
    assert b.checked(requests[0]) is not None
    waiting = b._list("SELECT id_hash FROM pending WHERE checked IS NULL")
    assert len(waiting) == 5


def _max_pending() -> Pending:
    """A consent request as large as `bounds` lets through, of random (incompressible)
    text."""

    def text(length: int) -> str:
        return secrets.token_urlsafe(length)[:length]

    return Pending(
        client_id=text(MAX_URL),
        client_name=text(MAX_CLIENT_NAME),
        redirect_uri="https://claude.ai/" + text(MAX_URL - 18),
        redirect_explicit=True,
        code_challenge=text(CODE_CHALLENGE_LENGTH),
        state=text(MAX_STATE),
        resource=RESOURCE,
        scopes=[text(MAX_SCOPE)],
    )


def _flood_pending(a: OAuthStore, clock: Clock, every: Callable[[], object]) -> None:
    """500 consent requests (five times the store's bound, 100), calling `every` after
    each 250."""
    for n in range(1, 501):
        a.add_pending(_max_pending())
        clock.now += 0.01
        if n % 250 == 0:
            every()


#: Unbounded, each round's 500 requests would take about 2 MB more.
MOST_BYTES = 100 * 8 * 1024 + 512 * 1024


def test_sqlite_consent_requests_stay_within_their_bytes(tmp_path: Path) -> None:
    clock = Clock()
    a = OAuthStore(tmp_path / "oauth.sqlite3", clock=clock, max_pending=100)
    try:
        sizes = []
        for _ in range(3):
            _flood_pending(a, clock, lambda: None)
            pages, size = a._one("PRAGMA page_count") or (0,), a._one("PRAGMA page_size") or (0,)
            sizes.append(pages[0] * size[0])
            assert a._one("SELECT count(*) FROM pending") == (100,)
    finally:
        a.close()
    print("SQLite store after each round:", sizes)
    assert max(sizes) < MOST_BYTES, sizes
    assert sizes[2] <= sizes[0] + 64 * 1024, "the pages freed are used again"


def test_postgresql_consent_requests_stay_within_their_bytes(pg_url: str) -> None:
    """PostgreSQL uses a deleted row's space again once VACUUM has seen it: the table
    holds its live rows and those deleted since. Autovacuum takes it up after a fixed
    number of deleted rows (the table's settings), checking every minute."""
    clock = Clock()
    a = PgOAuthStore(pg_url, clock=clock, max_pending=100)
    sizes = []
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            (options,) = admin.execute(
                "SELECT reloptions FROM pg_class WHERE oid = 'tradavity_oauth.pending'::regclass"
            ).fetchone() or (None,)
            assert "autovacuum_vacuum_scale_factor=0" in options
            for _ in range(4):
                _flood_pending(a, clock, lambda: admin.execute("VACUUM tradavity_oauth.pending"))
                (size,) = admin.execute(
                    "SELECT pg_total_relation_size('tradavity_oauth.pending')"
                ).fetchone() or (0,)
                sizes.append(int(size))
                assert a._one("SELECT count(*) FROM pending") == (100,)
    finally:
        a.close()
    print("PostgreSQL pending table after each round:", sizes)
    # The live rows and those deleted between two vacuums (250 here), with indexes.
    assert max(sizes) < (100 + 250) * 8 * 1024 + 512 * 1024, sizes
    assert sizes[3] <= sizes[1] + 64 * 1024, "vacuumed space is used again"


#: Each statement that keeps a bound, with arguments, and the index it must run on.
_SWEEPS = (
    (_SWEEP_PENDING, (0.0,), "pending_by_expiry"),
    (_EVICT_PENDING, (5,), "pending_by_expiry"),
    (_SWEEP_CLIENTS, (0.0, 0.0, 0.0, 0.0), "clients_by_created"),
    (_SWEEP_CLIENTS, (0.0, 0.0, 0.0, 0.0), "grants_by_client"),
    (_PROVEN, ("mac", 0.0, 0.0), "clients_by_origin"),
    (_CLIENT, ("c1", 0.0, 0.0, 0.0), "grants_by_client"),
    ("DELETE FROM codes WHERE expires < ?", (0.0,), "codes_by_expiry"),
)


def test_sqlite_sweeps_run_on_indexes(tmp_path: Path) -> None:
    OAuthStore(tmp_path / "oauth.sqlite3").close()
    with closing(sqlite3.connect(tmp_path / "oauth.sqlite3")) as db:
        for sql, args, index in _SWEEPS:
            plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, (
                sql,
                plan,
            )
            # An ordered walk of an index is fine; a walk of a table is not.
            assert not re.search(r"SCAN (pending|clients|grants|codes)( \||$)", plan), plan


def test_postgresql_sweeps_run_on_indexes(pg_url: str) -> None:
    PgOAuthStore(pg_url).close()
    with psycopg.connect(pg_url, cursor_factory=ClientCursor) as db, db.cursor() as cur:
        cur.execute(f"SET search_path TO {SCHEMA}".encode())
        # The tables are empty: only forbidding sequential scans shows which index a
        # statement can run on.
        cur.execute("SET enable_seqscan = off")
        for sql, args, index in _SWEEPS:
            cur.execute(("EXPLAIN " + sql.replace("?", "%s")).encode(), args)
            plan = " | ".join(row[0] for row in cur.fetchall())
            # On grants the planner may as well take the live-grants index (the
            # resumer's, on principal WHERE revoked IS NULL): an index either way.
            wanted = (index, "grants_by_principal") if index.startswith("grants") else (index,)
            assert any(name in plan for name in wanted), (sql, plan)
            assert "Seq Scan" not in plan, (sql, plan)


def test_an_older_sqlite_store_is_brought_up_to_date(tmp_path: Path) -> None:
    """A store made before registrations were bounded: its clients table gains the new
    column and every table its indexes, and what it held is still there."""
    path = tmp_path / "oauth.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE clients (client_id TEXT PRIMARY KEY, info TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )
        db.execute("INSERT INTO clients VALUES ('old', ?, ?)", (json.dumps(_info("old")), 1.8e9))
        db.commit()
    clock = Clock()
    for _ in range(2):  # and opening it again changes nothing more
        a = OAuthStore(path, clock=clock)
        try:
            assert a.client("old") == _info("old")
            assert not a.proven("mac")
        finally:
            a.close()
    with closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(clients)")]
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        indexes = {row[0] for row in names}
    assert columns == ["client_id", "info", "created", "registered_from"]
    assert {"pending_by_expiry", "clients_by_created", "clients_by_origin"} <= indexes


async def test_a_code_presented_again_on_another_replica_revokes_its_grant(
    store: Open,
) -> None:
    clock = Clock()
    one, two = _provider(store(clock), clock), _provider(store(clock), clock)
    code = await one.store.add_grant(_pending(), _checked())
    loaded = await one.load_authorization_code(_client(), code)
    assert loaded is not None
    tokens = await one.exchange_authorization_code(_client(), loaded)
    assert tokens.access_token
    assert await two.resolve(tokens.access_token) is not None
    # The same code at the other replica: refused there, and the grant ends everywhere.
    assert await two.load_authorization_code(_client(), code) is None
    assert await one.resolve(tokens.access_token) is None


async def test_a_used_refresh_token_presented_on_another_replica_revokes_its_grant(
    store: Open,
) -> None:
    clock = Clock()
    one, two = _provider(store(clock), clock), _provider(store(clock), clock)
    code = await one.store.add_grant(_pending(), _checked())
    loaded = await one.load_authorization_code(_client(), code)
    assert loaded is not None
    first = await one.exchange_authorization_code(_client(), loaded)
    assert first.refresh_token is not None
    refresh = await two.load_refresh_token(_client(), first.refresh_token)
    assert refresh is not None
    second = await two.exchange_refresh_token(_client(), refresh, ["read:trades"])
    assert second.scope == "read:trades"
    resolved = await one.resolve(second.access_token)
    assert resolved is not None
    assert resolved.key == KEY
    # Replayed (on the first replica, after it rotated on the second).
    assert await one.load_refresh_token(_client(), first.refresh_token) is None
    assert await two.resolve(second.access_token) is None
    # Exchanging a token already spent is refused as invalid_grant.
    with pytest.raises(TokenError) as info:
        await two.exchange_refresh_token(_client(), refresh, [])
    assert info.value.error == "invalid_grant"


async def test_a_refresh_racing_another_replicas_is_refused_and_the_grant_lives(
    store: Open,
) -> None:
    """Both requests found the token unspent; the one that spends it first wins. The
    other is a retry in flight, not a replay: refused, without ending the grant."""
    clock = Clock()
    one, two = _provider(store(clock), clock), _provider(store(clock), clock)
    code = await one.store.add_grant(_pending(), _checked())
    loaded = await one.load_authorization_code(_client(), code)
    assert loaded is not None
    first = await one.exchange_authorization_code(_client(), loaded)
    assert first.refresh_token is not None
    on_one = await one.load_refresh_token(_client(), first.refresh_token)
    on_two = await two.load_refresh_token(_client(), first.refresh_token)
    assert on_one is not None
    assert on_two is not None
    won = await two.exchange_refresh_token(_client(), on_two, on_two.scopes)
    with pytest.raises(TokenError) as info:
        await one.exchange_refresh_token(_client(), on_one, on_one.scopes)
    assert info.value.error == "invalid_grant"
    resolved = await one.resolve(won.access_token)
    assert resolved is not None
    assert resolved.key == KEY
    assert won.refresh_token is not None
    assert await one.load_refresh_token(_client(), won.refresh_token) is not None


# --- PostgreSQL only -----------------------------------------------------------------------


def _race(rounds: int, attempt: Callable[[PgOAuthStore, int], bool], url: str) -> list[int]:
    """`rounds` times, two replicas (threads, each with its own connection) attempt the
    same thing at the same moment; how many won each round."""
    stores = [PgOAuthStore(url), PgOAuthStore(url)]
    wins = [0] * rounds
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def replica(store: PgOAuthStore) -> None:
        for n in range(rounds):
            barrier.wait()
            if attempt(store, n):
                with lock:
                    wins[n] += 1

    threads = [threading.Thread(target=replica, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in stores:
            s.close()
    return wins


def test_two_replicas_redeeming_one_code_at_once_one_wins(pg_url: str) -> None:
    setup = PgOAuthStore(pg_url)
    codes = [setup.add_grant(_pending(), _checked()) for _ in range(40)]
    setup.close()
    wins = _race(len(codes), lambda s, n: s.use_code(codes[n]), pg_url)
    assert wins == [1] * len(codes)


def test_two_replicas_rotating_one_refresh_token_at_once_one_wins(pg_url: str) -> None:
    setup = PgOAuthStore(pg_url)
    setup.add_grant(_pending(), _checked())
    (grant,) = setup.grants()
    refreshes = [setup.issue(grant.id).refresh for _ in range(40)]
    setup.close()
    pairs: list[object] = []

    def rotate(store: PgOAuthStore, n: int) -> bool:
        pair = store.rotate(refreshes[n], grant.id)
        pairs.append(pair)
        return pair is not None

    wins = _race(len(refreshes), rotate, pg_url)
    assert wins == [1] * len(refreshes)
    assert len([p for p in pairs if p is not None]) == len(refreshes)  # one pair per token


def test_two_replicas_approving_one_consent_at_once_one_wins(pg_url: str) -> None:
    setup = PgOAuthStore(pg_url)
    requests = [setup.add_pending(_pending()) for _ in range(40)]
    setup.close()
    wins = _race(len(requests), lambda s, n: s.take_pending(requests[n]), pg_url)
    assert wins == [1] * len(requests)


def test_migrations_are_recorded_in_their_own_schema_and_applied_once(pg_url: str) -> None:
    shipped = oauth_migrations()
    assert [v for v, _, _ in shipped] == list(range(1, len(shipped) + 1))
    ledger = PgLedger(pg_url)  # the ledger shares the database, not the versions
    first, second = PgOAuthStore(pg_url), PgOAuthStore(pg_url)
    try:
        assert first.schema_version() == second.schema_version() == shipped[-1][0]
        with psycopg.connect(pg_url) as db:
            mine = db.execute("SELECT version, name FROM tradavity_oauth.schema_version").fetchall()
            ledgers = db.execute("SELECT version, name FROM public.schema_version").fetchall()
            tables = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (SCHEMA,),
            ).fetchall()
        assert SCHEMA == "tradavity_oauth"
        assert mine == [(v, name) for v, name, _ in shipped]
        assert ledgers == [(v, name) for v, name, _ in migrations()]
        assert {t for (t,) in tables} >= {"clients", "pending", "grants", "codes", "tokens"}
    finally:
        for one in (ledger, first, second):
            one.close()


def test_a_replica_with_another_secret_is_told_so(pg_url: str) -> None:
    a, b = PgOAuthStore(pg_url), PgOAuthStore(pg_url)
    try:
        assert a.check_secret(BOX.mac("check"))
        assert b.check_secret(BOX.mac("check"))  # the same secret: accepted
        assert not b.check_secret(KeyBox("t" * 40).mac("check"))
        a.add_grant(_pending(), _checked())
        assert a.revoke_all() == 1  # every grant ended: the secret may change
        assert b.check_secret(KeyBox("t" * 40).mac("check"))
        assert not a.check_secret(BOX.mac("check"))
    finally:
        a.close()
        b.close()


def test_an_unreachable_store_is_named_without_its_password() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://trader:s3cr3t-pw@127.0.0.1:{port}/tradavity"
    with pytest.raises(OAuthStoreUnavailable) as info:
        PgOAuthStore(url, connect_timeout=2)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert f"postgresql://trader:***@127.0.0.1:{port}/tradavity" in message
    assert "cannot be reached" in message
    assert "TRADAVITY_STORE_URL" in message


@pytest.mark.parametrize("checked", [True, False], ids=["idle-checked", "in-use"])
def test_a_lost_connection_is_opened_again(
    pg_url: str, checked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Connections, "CHECK_AFTER_SECONDS", 0.0 if checked else float("inf"))
    store = PgOAuthStore(pg_url)
    try:
        code = store.add_grant(_pending(), _checked())
        _terminate_backends(pg_url)
        if not checked:  # the call that meets the loss fails plainly, deciding nothing
            with pytest.raises(OAuthStoreUnavailable, match="cannot be reached"):
                store.use_code(code)
        assert store.use_code(code)
        assert not store.use_code(code)
    finally:
        store.close()


def _terminate_backends(url: str) -> None:
    import time

    query = (
        "SELECT {} FROM pg_stat_activity "
        "WHERE application_name = 'tradavity-mcp oauth' AND datname = current_database()"
    )
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(query.format("pg_terminate_backend(pid)").encode())
        for _ in range(500):  # until the backend has really gone
            row: Any = admin.execute(query.format("count(*)").encode()).fetchone()
            if row[0] == 0:
                return
            time.sleep(0.01)
