"""Two servers sharing one PostgreSQL ledger (`TRADAVITY_STORE_URL`), as two replicas
behind a load balancer would, against the sandbox: a call sent to both at once writes
once; a store that cannot be reached stops the writes, and says so."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import DEMO_KEY, ManualClock, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.server.writes.call import CALL_ID_META_KEY
from tradavity_mcp.server.writes.ledger import Ledger, LedgerUnavailable
from tradavity_mcp.server.writes.store_pg import PgLedger
from tradavity_mcp.server.writes.stores import open_ledger
from tradavity_mcp.settings import ConfigError, Settings

from ...kit import (
    NOW,
    SANDBOX_URL,
    SandboxTime,
    data_of,
    meta,
    plain_trade,
    sandbox_writes,
    text_of,
)

pytestmark = pytest.mark.anyio


def _settings(state: Path, store_url: str | None) -> Settings:
    environ = {"TRADAVITY_API_KEY": DEMO_KEY}
    if store_url is not None:
        environ["TRADAVITY_STORE_URL"] = store_url
    return Settings.load(environ=environ, base_url=SANDBOX_URL, state_dir=state)


def _server(settings: Settings, app: Any, clock: ManualClock) -> MCPServer:
    return build_server(settings, transport=SandboxTransport(app), clock=SandboxTime(clock))


async def _trades_by_pnl(app: Any) -> dict[float, int]:
    counts: dict[float, int] = {}
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        async for row in api.iter_trades(symbol="MNQ", limit=200):
            assert row.net_pnl is not None
            counts[row.net_pnl] = counts.get(row.net_pnl, 0) + 1
    return counts


async def _both_at_once(clients: list[Client], args: dict[str, Any]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []

    async def send(client: Client) -> None:
        answers.append(data_of(await client.call_tool("create_trade", args)))

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(send, client)
    return answers


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [e for inner in exc.exceptions for e in _flatten(inner)]
    return [exc, *([exc.__cause__] if exc.__cause__ else [])]


def test_the_store_setting_chooses_the_ledger(tmp_path: Path, postgres_url: str) -> None:
    assert _settings(tmp_path, None).store_url is None
    local = open_ledger(_settings(tmp_path, None))
    shared = open_ledger(_settings(tmp_path, postgres_url))
    try:
        assert type(local) is Ledger
        assert isinstance(shared, PgLedger)
    finally:
        local.close()
        shared.close()
    with pytest.raises(ConfigError, match="postgresql://"):
        _settings(tmp_path, "mysql://db/x")


async def test_two_servers_on_one_store_write_each_call_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """The same create_trade, no id, sent to both servers at once, 50 times: 50 trades.
    Each server has a state directory of its own: only the store joins them."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    servers = [
        _server(_settings(tmp_path / f"replica-{i}", postgres_url), app, clock) for i in (1, 2)
    ]
    pnls = [round(100 + i * 1.25, 2) for i in range(50)]
    async with Client(servers[0]) as one, Client(servers[1]) as two:
        for pnl in pnls:
            answers = await _both_at_once([one, two], plain_trade(pnl))
            assert sorted(a["outcome"] for a in answers) == ["done", "suspected_duplicate"]
            assert answers[0]["trade_number"] == answers[1]["trade_number"]
    counts = await _trades_by_pnl(app)
    assert [counts.get(pnl, 0) for pnl in pnls] == [1] * 50


async def test_without_the_store_the_same_two_servers_would_write_twice(tmp_path: Path) -> None:
    """The control: each server on its own local ledger doubles the call, which is what
    the shared store prevents."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    servers = [_server(_settings(tmp_path / f"replica-{i}", None), app, clock) for i in (1, 2)]
    async with Client(servers[0]) as one, Client(servers[1]) as two:
        answers = await _both_at_once([one, two], plain_trade(77.5))
    assert [a["outcome"] for a in answers] == ["done", "done"]
    assert (await _trades_by_pnl(app))[77.5] == 2


async def test_an_unreachable_store_stops_the_server_and_sends_nothing(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"postgresql://trader:hunter2-secret@127.0.0.1:{port}/tradavity"
        with pytest.raises(BaseException) as info:  # noqa: PT011 (an exception group)
            async with Client(_server(_settings(tmp_path, url), app, clock)) as client:
                await client.call_tool("create_trade", plain_trade(5.0))
    found = [e for e in _flatten(info.value) if isinstance(e, LedgerUnavailable)]
    assert found, repr(info.value)
    message = str(found[0])
    assert f"trader:***@127.0.0.1:{port}/tradavity" in message
    assert "hunter2-secret" not in message
    assert "cannot be reached" in message
    assert sandbox_writes(app) == 0


async def test_a_store_lost_mid_run_refuses_writes_with_the_fix_then_recovers(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    name = postgres_url.rpartition("/")[2]
    admin_url = postgres_url.rpartition("/")[0] + "/postgres"
    async with Client(_server(_settings(tmp_path, postgres_url), app, clock)) as client:
        assert (
            data_of(await client.call_tool("create_trade", plain_trade(1.0)))["outcome"] == "done"
        )
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s",
                (name,),
            )
        writes = sandbox_writes(app)
        for pnl in (2.0, 3.0):  # the lost connection, then a refused reconnection
            refused = await client.call_tool("create_trade", plain_trade(pnl))
            assert refused.is_error
            text = text_of(refused)
            assert "write ledger's store postgresql://postgres@127.0.0.1" in text
            assert "Nothing was sent to Tradavity" in text
        assert sandbox_writes(app) == writes
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        again = data_of(await client.call_tool("create_trade", plain_trade(2.0)))
        assert again["outcome"] == "done"
    counts = await _trades_by_pnl(app)
    assert (counts.get(1.0), counts.get(2.0), counts.get(3.0)) == (1, 1, None)


class _StoreLostAfter(httpx2.AsyncBaseTransport):
    """The sandbox; once armed, the ledger's database is closed to every connection the
    moment Tradavity has answered `POST /trades` (the trade exists; nothing recorded it)."""

    def __init__(self, app: Any, database_url: str) -> None:
        self.inner = SandboxTransport(app)
        self.name = database_url.rpartition("/")[2]
        self.admin_url = database_url.rpartition("/")[0] + "/postgres"
        self.armed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.method == "POST" and request.url.path.endswith("/trades"):
            self.armed = False
            _allow_connections(self.admin_url, self.name, allow=False)
        return response


def _allow_connections(admin_url: str, name: str, *, allow: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s",
                (name,),
            )


async def test_a_store_lost_mid_journal_names_the_trade_written_and_the_parts_not(
    tmp_path: Path, postgres_url: str
) -> None:
    """The store goes the moment the trade is created: the error says trade #N was
    created and its tags were not written (not "nothing was sent"); once the store is
    back, the same call finishes that trade, and there is one."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    transport = _StoreLostAfter(app, postgres_url)
    server = build_server(
        _settings(tmp_path, postgres_url), transport=transport, clock=SandboxTime(clock)
    )
    args = {"trade": {**plain_trade(64.5), "symbol": "MYM"}, "tags": ["fomo", "breakout"]}
    call_meta = meta({CALL_ID_META_KEY: "store-lost-1"})
    async with Client(server) as client:
        transport.armed = True
        failed = await client.call_tool("journal_trade", args, meta=call_meta)
        assert failed.is_error
        text = text_of(failed)
        async with TradavityClient(
            DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
        ) as api:
            [row] = [r async for r in api.iter_trades(symbol="MYM") if r.net_pnl == 64.5]
            assert (await api.get_trade(row.trade_number)).tags == []
        assert f"Trade #{row.trade_number} was created in Tradavity." in text
        assert "Not written: tags." in text
        assert "Nothing was sent" not in text
        assert "write ledger's store postgresql://postgres@127.0.0.1" in text  # and the fix
        _allow_connections(transport.admin_url, transport.name, allow=True)
        again = data_of(await client.call_tool("journal_trade", args, meta=call_meta))
        assert again["outcome"] in {"done", "replayed"}  # by this call, or the resumer
        assert again["trade_number"] == row.trade_number
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        rows = [r async for r in api.iter_trades(symbol="MYM") if r.net_pnl == 64.5]
        assert [r.trade_number for r in rows] == [row.trade_number]
        tags = (await api.get_trade(row.trade_number)).tags
        assert sorted(str(t.get("name")).casefold() for t in tags) == ["breakout", "fomo"]
