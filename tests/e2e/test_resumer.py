"""The resumer: pending writes finished without their user, on a schedule, at the moment
they were asked for.

* After a SIGKILL and a restart under `--auth oauth` (real server processes, the sandbox
  in a process of its own), a pending journal's tags land with nobody calling again:
  the user's grant holds their key.
* With a per-user key the server keeps nothing of, the pending text says the write
  waits for the user's next connection if the server restarts first; under OAuth not.
* A trade journaled at "now" during an outage is dated when the call was made.
* The resumer tries a pending call at once, then after 30 s, 1 min, 2 min ... up to an
  hour between tries, and stops it after three days (on the sandbox's clock).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tradavity_mcp.api.client import RetryPolicy, TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.server.app import Backend
from tradavity_mcp.server.writes.call import CALL_ID_META_KEY, PENDING_LIMIT_SECONDS
from tradavity_mcp.server.writes.ledger import Ledger
from tradavity_mcp.settings import Settings

from ..drills._kit import Plan
from ..drills.drills import Outage
from ..kit import (
    FAST_RETRY,
    NOW,
    SANDBOX_URL,
    TLS,
    SandboxTime,
    data_of,
    http_transport,
    meta,
    plain_trade,
    text_of,
)
from ..replicas._harness import SandboxProcess, clean_env, wait_http
from ..replicas.scenarios import committed, verify_whole, wait_for_writes
from ..server.oauth.kit import Served, free_port, oauth_server, tokens_for

pytestmark = pytest.mark.anyio

#: What the pending text adds when the server keeps no key of the user's.
NEXT_CONNECT = "If this server restarts before then, it is finished when the user next connects."


# --- after a SIGKILL, under --auth oauth ---------------------------------------------------


def _serve_oauth(state: Path, port: int, api: str, log: Path) -> subprocess.Popen[bytes]:
    """`tradavity-mcp --auth oauth` over HTTP on loopback, its state (ledger, grants,
    secret) in `state`."""
    with log.open("ab") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradavity_mcp", "--transport", "http",
             "--host", "127.0.0.1", "--port", str(port), "--auth", "oauth",
             "--base-url", api, "--log-level", "INFO"],
            env=clean_env({"TRADAVITY_STATE_DIR": str(state)}),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
        )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _sandbox_process(home: Path) -> Iterator[SandboxProcess]:
    sandbox = SandboxProcess(home)
    try:
        sandbox.wait_ready()
        yield sandbox
    finally:
        sandbox.close()


async def test_a_pending_journal_lands_after_a_sigkill_and_restart_with_nobody_calling(
    tmp_path: Path,
) -> None:
    """journal_trade under `--auth oauth`, SIGKILLed once its trade exists and its tags,
    screenshot and checklist are on their way; the server is started again and nobody
    connects: the resumer opens the user's key from their grant and finishes the call.
    One trade, its tags, one screenshot, one checklist; no write carried out twice."""
    state, log = tmp_path / "state", tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _sandbox_process(tmp_path) as sandbox:
        key = sandbox.new_key()  # a user of their own: an empty ledger
        proc = _serve_oauth(state, port, sandbox.api, log)
        try:
            async with httpx2.AsyncClient(verify=TLS, timeout=30) as http:
                access = (await tokens_for(http, Served(base, state), key))["access_token"]
            async with Client(http_transport(base, access)) as client:
                plan = await Plan.discover(client)
            args = plan.arguments(7, symbol="MYM")
            _, mark = sandbox.log_since()
            # Each request held 400 ms: the parts are in flight when the server dies.
            sandbox.set_faults("latency_ms=400")
            try:
                async with (
                    Client(http_transport(base, access)) as doomed,
                    anyio.create_task_group() as tg,
                ):

                    async def doomed_call() -> None:
                        with contextlib.suppress(Exception):  # its answer never comes
                            await doomed.call_tool(
                                "journal_trade", args, meta=meta({CALL_ID_META_KEY: "killed"})
                            )

                    tg.start_soon(doomed_call)
                    await wait_for_writes(sandbox, mark, "/trades")
                    await anyio.sleep(0.15)
                    _kill(proc)
                    tg.cancel_scope.cancel()
            except* httpx2.TransportError:
                pass  # the doomed client's own transport, its server gone
            await anyio.sleep(0.6)  # what was in flight lands (or not)
            sandbox.set_faults(None)
            at_kill = committed(sandbox.log_since(mark)[0])
            assert at_kill[0].path == "/api/v1/trades"
            ledger = Ledger(state / "ledger.sqlite3")
            try:
                assert [c.tool for c in ledger.pending_calls()] == ["journal_trade"]
                proc = _serve_oauth(state, port, sandbox.api, log)  # nobody connects
                with anyio.fail_after(60):  # a guard against hanging, not the measure
                    while ledger.pending_calls():  # noqa: ASYNC110 (another process)
                        await anyio.sleep(0.1)
                finished = ledger.get_call(*_only_call(ledger, "journal_trade"))
            finally:
                ledger.close()
            assert finished is not None
            assert (finished.state, finished.outcome) == ("done", "done")
        finally:
            _kill(proc)
        async with sandbox.api_client(key) as api:
            await verify_whole(api, plan, "MYM", 1000 + 7 + 0.25)
        writes = committed(sandbox.log_since(mark)[0])
        keys = [s.idempotency_key for s in writes]
        assert len(keys) == len(set(keys)), "a write carried out twice"
        assert [s.path for s in writes].count("/api/v1/trades") == 1
    text = log.read_text("utf-8", errors="replace")
    assert key not in text
    assert "finished pending journal_trade call" in text


def _only_call(ledger: Ledger, tool: str) -> tuple[str, str, str]:
    rows = ledger._read("SELECT principal, call_id FROM calls WHERE tool=?", (tool,))
    [(principal, call_id)] = [(r["principal"], r["call_id"]) for r in rows]
    return principal, tool, call_id


# --- what the pending text promises ---------------------------------------------------------


@contextlib.contextmanager
def _per_user_server(tmp_path: Path, transport: httpx2.AsyncBaseTransport) -> Iterator[str]:
    settings = Settings.load(
        environ={}, base_url=SANDBOX_URL, state_dir=tmp_path / "state", require_key=False
    )
    hosted = HostedOptions(auth="per-user", public_url="http://127.0.0.1")
    server = build_server(
        settings, transport=transport, stdio=False, hosted=hosted, retry=FAST_RETRY
    )
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        yield base


async def _pending_text(base: str, bearer: str, outage: Outage, pnl: float) -> str:
    async with Client(http_transport(base, bearer)) as client:
        await client.call_tool("lookup", {"name": "accounts"})  # the key checked, API up
        outage.down = True
        try:
            result = await client.call_tool("create_trade", plain_trade(pnl))
        finally:
            outage.down = False
    assert data_of(result)["outcome"] == "pending"
    return text_of(result)


async def test_a_per_user_keys_pending_write_says_it_waits_for_the_users_return(
    tmp_path: Path,
) -> None:
    """The server holds a per-user key only while it runs: after a restart the write is
    finished when the user connects again, and the text says so."""
    outage = Outage(SandboxTransport(create_app(SandboxConfig(db=":memory:"))))
    with _per_user_server(tmp_path, outage) as base:
        text = await _pending_text(base, DEMO_KEY, outage, 31.5)
    assert "will be finished automatically, exactly once; do not call again." in text
    assert NEXT_CONNECT in text


async def test_under_oauth_the_pending_text_promises_no_wait(tmp_path: Path) -> None:
    """A grant holds the key: the server finishes the write even after a restart."""
    outage = Outage(SandboxTransport(create_app(SandboxConfig(db=":memory:"))))
    with oauth_server(tmp_path, transport=outage, retry=FAST_RETRY) as served:
        async with httpx2.AsyncClient(verify=TLS, timeout=30) as http:
            access = (await tokens_for(http, served, DEMO_KEY))["access_token"]
        text = await _pending_text(served.base, access, outage, 32.5)
    assert "will be finished automatically, exactly once; do not call again." in text
    assert NEXT_CONNECT not in text


# --- "now", and the schedule, on the sandbox's clock ------------------------------------------


class _World:
    """A server on the sandbox, both on one manual clock, with the API's reachability in
    the test's hands; its resumer looks every few milliseconds (real time)."""

    def __init__(self, tmp_path: Path, transport: httpx2.AsyncBaseTransport, clock: Any) -> None:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=tmp_path
        )
        self.server = build_server(
            settings,
            transport=transport,
            clock=clock,
            retry=RetryPolicy(max_attempts=1),  # one request per try: tries are countable
            resume_interval=0.002,
        )

    @property
    def backend(self) -> Backend:
        return self.server.backend

    async def passes(self, n: int = 2) -> None:
        """Until the resumer has made `n` more passes (two: one began after the call)."""
        resumer = self.backend.resumer
        assert resumer is not None
        until = resumer.passes + n
        with anyio.fail_after(30):  # a guard against hanging, not the measure
            while resumer.passes < until:  # noqa: ASYNC110 (a counter, no event)
                await anyio.sleep(0.001)


async def test_now_is_when_the_call_was_made_not_when_it_lands(tmp_path: Path) -> None:
    """The API is down when a trade is journaled at "now" (before the server knew the
    account's id: nothing could be resolved); it lands two hours later, by the resumer,
    dated when it was asked for."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    outage = Outage(SandboxTransport(app))
    world = _World(tmp_path, outage, SandboxTime(clock))
    args = {
        "trade": {**plain_trade(44.75), "symbol": "MGC", "trade_date": "now"},
        "tags": ["fomo", "breakout"],
    }
    async with Client(world.server) as client:
        outage.down = True
        asked_at = clock.now()
        pending = data_of(await client.call_tool("journal_trade", args))
        assert pending["outcome"] == "pending"
        assert "pending at step: lookup" in text_of(
            await client.call_tool("journal_trade", args)  # the same call: still pending
        )
        clock.advance(2 * 3600)
        outage.down = False
        ledger = Ledger(tmp_path / "ledger.sqlite3")
        try:
            with anyio.fail_after(30):  # a guard against hanging, not the measure
                while ledger.pending_calls():
                    await world.passes(1)
        finally:
            ledger.close()
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        [row] = [r async for r in api.iter_trades(symbol="MGC")]
        trade = await api.get_trade(row.trade_number)
    assert len(trade.tags) == 2
    landed = datetime.fromisoformat(str(trade.trade_date).replace("Z", "+00:00"))
    assert abs(landed.timestamp() - asked_at) < 60, (landed, asked_at)


class _CreatesFail(httpx2.AsyncBaseTransport):
    """The sandbox, whose `POST /trades` never gets an answer while `down` (each try at
    the sandbox's clock recorded); every other request goes through."""

    def __init__(self, app: Any, clock: ManualClock) -> None:
        self.inner = SandboxTransport(app)
        self.clock = clock
        self.down = True
        self.tries: list[float] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path.endswith("/trades"):
            self.tries.append(self.clock.now())
            if self.down:
                raise httpx2.ReadTimeout("no answer (the test's outage)", request=request)
        return await self.inner.handle_async_request(request)


async def test_pending_calls_are_tried_on_a_doubling_schedule_then_stopped(
    tmp_path: Path,
) -> None:
    """A create that never gets an answer: tried by the call, by the resumer at once,
    then 30 s, 1, 2, 4, 8, 16, 32 min and every hour; three days after it was made, the
    next try stops it, and nothing is sent for it again."""
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    transport = _CreatesFail(app, clock)
    world = _World(tmp_path, transport, SandboxTime(clock))
    call_meta = meta({CALL_ID_META_KEY: "never-answered"})
    async with Client(world.server) as client:
        made = clock.now()
        first = data_of(await client.call_tool("create_trade", plain_trade(58.25), meta=call_meta))
        assert first["outcome"] == "pending"
        await world.passes()
        while clock.now() < made + 4 * 3600:  # four hours, thirty seconds at a time
            clock.advance(30)
            await world.passes()
        gaps = [round(b - a) for a, b in itertools.pairwise(transport.tries[1:])]
        assert transport.tries[:2] == [made, made]  # the call, then the resumer at once
        assert gaps == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600], transport.tries
        while clock.now() < made + PENDING_LIMIT_SECONDS + 3 * 3600:  # twenty minutes a step
            clock.advance(1200)
            await world.passes()
        hourly = [round(b - a) for a, b in itertools.pairwise(transport.tries[10:])]
        assert all(3600 <= gap <= 3600 + 1200 for gap in hourly), hourly
        last = transport.tries[-1]
        assert made + PENDING_LIMIT_SECONDS <= last < made + PENDING_LIMIT_SECONDS + 3600 + 1200
        assert last < clock.now() - 3600  # and none since
        assert len(transport.tries) < 90  # against ~8,700 at one try every 30 s
        ended = await client.call_tool("create_trade", plain_trade(58.25), meta=call_meta)
        assert ended.is_error
        assert "within 72 hours, so it was stopped" in text_of(ended)
        assert "never confirmed (it may or may not be in Tradavity): create." in text_of(ended)
        assert transport.tries[-1] == last  # the replay sent nothing
