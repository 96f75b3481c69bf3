"""A bearer check that waits on the OAuth store never stalls the server: with the store on
PostgreSQL, a request whose token check waits for a row another replica has locked leaves
the event loop free, so `/healthz` and other users' calls are answered meanwhile (over
real HTTP, the server in a thread of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psycopg
import pytest
from mcp import Client
from pydantic import SecretStr

from tradavity_mcp.sandbox import DEMO_KEY, SECOND_PRO_KEY
from tradavity_mcp.server.oauth.offload import AsyncOAuthStore
from tradavity_mcp.server.oauth.store import OAuthStore
from tradavity_mcp.server.writes.offload import STORE_THREADS

from ...kit import TLS, data_of, http_transport
from ...services import lock_waiters, until_waiting
from .kit import Served, oauth_server, tokens_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def served(tmp_path: Path, postgres_url: str) -> Iterator[Served]:
    with oauth_server(tmp_path, store_url=postgres_url, secret_key=SecretStr("o" * 48)) as s:
        yield s


async def test_a_token_check_waiting_for_a_locked_grant_stalls_no_one_else(
    served: Served, postgres_url: str
) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        access = (await tokens_for(http, served, DEMO_KEY))["access_token"]
    admin = psycopg.connect(postgres_url, autocommit=True)
    other_replica = psycopg.connect(postgres_url)  # one open transaction, as a replica's
    answered = anyio.Event()
    found: list[dict[str, Any]] = []
    try:
        (grant_id,) = admin.execute("SELECT id FROM tradavity_oauth.grants").fetchone() or ()
        # Another replica is in the middle of changing this grant (a revocation, say).
        other_replica.execute(
            "SELECT id FROM tradavity_oauth.grants WHERE id = %s FOR UPDATE", (grant_id,)
        )
        async with (
            httpx2.AsyncClient(timeout=30, verify=TLS) as http,
            Client(http_transport(served.base, SECOND_PRO_KEY)) as other_user,
            anyio.create_task_group() as tg,
        ):

            async def connect_with_the_token() -> None:
                # Its first request notes the grant's use: that waits for the row.
                async with Client(http_transport(served.base, access)) as client:
                    found.append(data_of(await client.call_tool("find_trades", {"limit": 1})))
                answered.set()

            tg.start_soon(connect_with_the_token)
            await until_waiting(admin, "tradavity-mcp oauth")

            # The token check is waiting. The same server answers the health check and
            # another user's call all the same ...
            with anyio.fail_after(60):
                health = await http.get(f"{served.base}/healthz")
                other = data_of(await other_user.call_tool("find_trades", {"limit": 1}))
            assert health.status_code == 200
            assert "trades" in other
            # ... while that check still waits.
            assert lock_waiters(admin, "tradavity-mcp oauth") == 1
            assert not answered.is_set()

            other_replica.rollback()
            with anyio.fail_after(60):
                await answered.wait()
        assert "trades" in found[0]
    finally:
        other_replica.close()
        admin.close()


async def test_the_store_runs_in_its_own_threads(tmp_path: Path) -> None:
    store = OAuthStore(tmp_path / "oauth.sqlite3")
    facade = AsyncOAuthStore(store)
    default = anyio.to_thread.current_default_thread_limiter()
    seen: list[tuple[float, float]] = []
    client = store.client

    def watched(client_id: str) -> Any:
        seen.append((default.borrowed_tokens, facade.limiter.borrowed_tokens))
        return client(client_id)

    store.client = watched  # type: ignore[method-assign]
    await facade.add_client("c1", {"client_id": "c1"})
    assert await facade.client("c1") == {"client_id": "c1"}
    assert seen == [(0, 1)]
    assert facade.limiter.total_tokens == STORE_THREADS
    await facade.aclose()
