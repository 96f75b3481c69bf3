"""A ledger call that waits never stalls the server: with the ledger on PostgreSQL, a
journaling call waiting for another replica's lock on its user leaves the event loop
free, so other users' calls and `/healthz` are answered meanwhile (over real HTTP).

And the facade itself: a call cancelled while its thread runs finishes its transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx2
import psycopg
import pytest
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.api.idempotency import principal_for_key
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SECOND_PRO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.server.writes.ledger import CallDraft, Ledger
from tradavity_mcp.server.writes.offload import STORE_THREADS, AsyncLedger
from tradavity_mcp.settings import Settings

from ...kit import SANDBOX_URL, TLS, data_of, http_transport, plain_trade
from ...services import lock_waiters, until_waiting

pytestmark = pytest.mark.anyio

#: What `PgLedger` locks for one principal's decisions (`store_pg.PgLedger._tx`).
LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"


def _served(tmp_path: Path, store_url: str, sandbox: Any) -> Iterator[str]:
    """A per-user server over HTTP, its ledger on `store_url`, in a thread of its own
    (its own event loop, as in production)."""
    settings = Settings.load(
        environ={"TRADAVITY_STORE_URL": store_url},
        base_url=SANDBOX_URL,
        state_dir=tmp_path / "state",
        require_key=False,
    )
    server = build_server(
        settings,
        transport=SandboxTransport(sandbox),
        stdio=False,
        hosted=HostedOptions(auth="per-user", public_url="http://127.0.0.1"),
    )
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        yield base


@pytest.fixture
def sandbox() -> Any:
    return create_app(SandboxConfig(db=":memory:"))


@pytest.fixture
def served(tmp_path: Path, postgres_url: str, sandbox: Any) -> Iterator[str]:
    yield from _served(tmp_path, postgres_url, sandbox)


async def _trades_at(sandbox: Any, key: str, pnl: float) -> int:
    async with TradavityClient(
        key, base_url=SANDBOX_URL, transport=SandboxTransport(sandbox)
    ) as api:
        rows = [row async for row in api.iter_trades(symbol="MNQ", limit=200)]
    return sum(1 for row in rows if row.net_pnl == pnl)


async def test_a_journaling_call_waiting_for_its_users_lock_stalls_no_one_else(
    served: str, postgres_url: str, sandbox: Any
) -> None:
    scope = "tradavity-ledger:" + principal_for_key(DEMO_KEY)
    other_replica = psycopg.connect(postgres_url, autocommit=True)
    admin = psycopg.connect(postgres_url, autocommit=True)
    answered = anyio.Event()
    outcome: list[str] = []
    try:
        # Another replica is deciding about this user's calls, and holds the lock.
        other_replica.execute(LOCK, (scope,))
        async with (
            Client(http_transport(served, DEMO_KEY)) as journaling,
            Client(http_transport(served, SECOND_PRO_KEY)) as reader,
            httpx2.AsyncClient(timeout=30, verify=TLS) as http,
            anyio.create_task_group() as tg,
        ):

            async def journal() -> None:
                result = await journaling.call_tool("create_trade", plain_trade(41.25))
                outcome.append(data_of(result)["outcome"])
                answered.set()

            tg.start_soon(journal)
            await until_waiting(admin, "tradavity-mcp", "advisory")

            # The server's claim is waiting for the lock. Another user's read, and the
            # health check, are answered by the same server all the same ...
            with anyio.fail_after(60):
                found = data_of(await reader.call_tool("find_trades", {"limit": 5}))
                health = await http.get(f"{served}/healthz")
            assert "trades" in found
            assert health.status_code == 200
            # ... while that claim is still waiting: nothing was let through.
            assert lock_waiters(admin, "tradavity-mcp", "advisory") == 1
            assert not answered.is_set()

            other_replica.execute(UNLOCK, (scope,))
            with anyio.fail_after(60):
                await answered.wait()
        assert outcome == ["done"]
        assert await _trades_at(sandbox, DEMO_KEY, 41.25) == 1
    finally:
        other_replica.close()
        admin.close()


def _draft(call_id: str) -> CallDraft:
    return CallDraft(
        "p", "create_trade", call_id, "d-" + call_id, "{}", "host", blobs={"b1": b"shot"}
    )


async def test_a_call_cancelled_while_its_thread_runs_finishes_its_transaction(
    tmp_path: Path,
) -> None:
    """Cancelled in the middle of a claim's transaction, the caller gets control back only
    once the transaction is over, and it is whole: the call and its file, recorded."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    inside, go_on = threading.Event(), threading.Event()
    insert = ledger._insert

    def slow_insert(db: Any, draft: CallDraft, **kwargs: Any) -> None:
        inside.set()  # the transaction is open
        go_on.wait(30)
        insert(db, draft, **kwargs)

    ledger._insert = slow_insert  # type: ignore[method-assign]
    facade = AsyncLedger(ledger)
    scopes: list[anyio.CancelScope] = []
    returned: list[bool] = []
    ran_on: list[bool] = []

    async def run_claim() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            try:
                await facade.claim(_draft("host:a"), owner="o", lease_seconds=60)
                await anyio.lowlevel.checkpoint()
                ran_on.append(True)
            finally:
                returned.append(go_on.is_set())

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_claim)
            await anyio.to_thread.run_sync(inside.wait)
            scopes[0].cancel()
            await anyio.sleep(0.05)
            assert returned == []  # cancelled, but waiting for its thread
            go_on.set()
    assert returned == [True]
    assert ran_on == []
    assert scopes[0].cancelled_caught
    record = ledger.get_call("p", "create_trade", "host:a")
    assert record is not None
    assert (record.state, record.owner) == ("pending", "o")
    assert ledger.blobs("p", "create_trade", "host:a") == {"b1": b"shot"}
    ledger.close()


async def test_the_store_uses_its_own_few_threads(tmp_path: Path) -> None:
    """Store calls take tokens from the store's limiter, not anyio's default one."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    facade = AsyncLedger(ledger)
    default = anyio.to_thread.current_default_thread_limiter()
    seen: list[tuple[float, float]] = []
    pending = ledger.pending_calls

    def watched(principal: str | None = None) -> Any:
        seen.append((default.borrowed_tokens, facade.limiter.borrowed_tokens))
        return pending(principal)

    ledger.pending_calls = watched  # type: ignore[method-assign]
    assert await facade.pending_calls("p") == []
    assert seen == [(0, 1)]
    assert facade.limiter.total_tokens == STORE_THREADS
    ledger.close()
