"""The drills themselves. Tests run them small; `python -m tests.drills.run` runs them big.

Every drill that re-sends a call can do it with our call id (`ids=True`) or with none at
all (`ids=False`), as Claude Desktop, ChatGPT, Cursor and the Inspector send it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FaultSpec,
    SandboxConfig,
    SandboxTransport,
    ScaledClock,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import FAST_RETRY, TLS, SandboxTime
from ._kit import Plan, journal_until_known, verify

SANDBOX = "http://sandbox.local/api/v1"
DRILL_FAULTS = FaultSpec(
    drop_after_commit=0.1, error_500=0.1, deadlock_503=0.1, rate_limit_429=0.03
)


def _settings(state: Path, base_url: str = SANDBOX) -> Settings:
    return Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=base_url, state_dir=state
    )


async def exactly_once(
    runs: int,
    state: Path,
    *,
    faults: FaultSpec = DRILL_FAULTS,
    seed: int = 1,
    ids: bool = True,
) -> dict[str, Any]:
    """N full journaling runs through a real MCP client while the API misbehaves."""
    clock = SandboxTime()
    app = create_app(SandboxConfig(db=":memory:", fault_seed=seed, clock=clock.manual))
    sandbox = app.state.sandbox
    server = build_server(
        _settings(state),
        transport=SandboxTransport(app),
        retry=FAST_RETRY,
        clock=clock,
    )
    started = time.perf_counter()
    async with Client(server) as client:
        plan = await Plan.discover(client)
        sandbox.set_faults(faults)
        for i in range(runs):
            call_id = f"drill-{seed}-{i}" if ids else None
            await journal_until_known(client.call_tool, plan.arguments(i), call_id)
        sandbox.set_faults(None)
    # Checking costs requests too: the checker waits out the rate window on the same clock.
    async with _api(app, clock) as api:
        await verify(api, plan, runs)
    counters = dict(sandbox.counters)
    return {
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
        "faults": {
            k: counters.get(k, 0)
            for k in ("drop_after_commit", "error_500", "deadlock_503", "rate_limit_429")
        },
        "replays": counters.get("replays", 0),
        "validation_errors_sent": counters.get("validation_error", 0),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(api_base: str, state: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = _start(api_base, state, port, log)
    _wait_ready(proc, port, log)
    return proc


def _start(api_base: str, state: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start a server process (HTTP on `port`) without waiting for it."""
    env = {
        **os.environ,
        "TRADAVITY_API_KEY": DEMO_KEY,
        "TRADAVITY_BASE_URL": api_base,
        "TRADAVITY_STATE_DIR": str(state),
    }
    with log.open("ab") as errlog:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradavity_mcp",
                "--transport",
                "http",
                "--port",
                str(port),
                "--log-level",
                "DEBUG",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
    return proc


#: How long a server or sandbox process may take to start before it is taken for hung.
START_SECONDS = 90.0


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until the server answers `/healthz` (a start takes a second or two; a loaded
    machine was seen to take over 20 s, so only a hang or an exit fails here)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if (
                httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1, verify=TLS).status_code
                == 200
            ):
                return
        except httpx2.TransportError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


async def crash_and_resume(
    runs: int, state: Path, log: Path, *, ids: bool = True, now: bool = False
) -> dict[str, Any]:
    """SIGKILL the server in the middle of journaling, start it again, re-issue the calls
    (with our id, or with none; `now` journals each trade at "now")."""
    # 120 ms per API request while a call is to be killed: a journaling run then takes over
    # half a second, so a kill 0.2 s in lands while its writes are in flight. The other calls
    # (re-issues, the calls between kills) and the check run at the sandbox's own speed.
    app = create_app(SandboxConfig(db=":memory:"))
    slow = FaultSpec(latency_ms=120)
    with serve_in_thread(app) as api_base:
        port = _free_port()
        proc = _spawn(api_base, state, port, log)
        kills = 0
        killed: set[int] = set()
        plan: Plan | None = None
        i = 0
        try:
            while i < runs:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    plan = plan or await Plan.discover(client)
                    crash_now = i % 2 == 0 and i not in killed
                    app.state.sandbox.set_faults(slow if crash_now else None)
                    with anyio.move_on_after(0.2 if crash_now else 120) as scope:
                        await journal_until_known(
                            client.call_tool,
                            plan.arguments(i, now=now),
                            f"crash-{i}" if ids else None,
                        )
                if scope.cancelled_caught:
                    # Mid-call: kill -9, start again, and re-issue the very same call (the
                    # next pass of the loop uses the same call id; it gets the full time).
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    killed.add(i)
                    proc = _spawn(api_base, state, port, log)
                    continue
                i += 1
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert plan is not None
        async with TradavityClient(DEMO_KEY, base_url=api_base) as api:
            await verify(api, plan, runs)
    return {"runs": runs, "kills": kills}


class Outage(httpx2.AsyncBaseTransport):
    """The sandbox, unreachable while `down` is set."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.down:
            raise httpx2.ConnectError("connection refused (drill outage)", request=request)
        return await self.inner.handle_async_request(request)


async def outage(runs: int, state: Path) -> dict[str, Any]:
    """The API is unreachable for a while: writes end pending; afterwards each lands once."""
    # Rate windows and Retry-After pass on the drill's clock: the resumer is measured,
    # not the per-minute window its catching up would otherwise wait out.
    clock = SandboxTime()
    app = create_app(SandboxConfig(db=":memory:", clock=clock.manual))
    transport = Outage(SandboxTransport(app))
    server = build_server(
        _settings(state),
        transport=transport,
        retry=FAST_RETRY,
        resume_interval=0.1,
        clock=clock,
    )
    pending_texts: list[str] = []
    async with Client(server) as client:
        plan = await Plan.discover(client)
        transport.down = True
        for i in range(runs):
            result = await client.call_tool(
                "journal_trade", plan.arguments(i), meta=_meta(f"outage-{i}")
            )
            data = dict(result.structured_content or {})
            assert data.get("outcome") == "pending", result
            pending_texts.append(str(result.content[0]))
        transport.down = False
        # The background resumer finishes them; nobody calls again. Wait while it makes
        # progress (every few seconds at least one more lands), however many there are.
        # Time passes meanwhile (a minute per poll): calls it tried during the outage wait
        # out their backoff (at most an hour) before it tries them again.
        landed, stalled_since = 0, time.monotonic()
        while landed < runs:
            await anyio.sleep(0.1)
            clock.manual.advance(60)
            async with _api(app, clock) as api:
                now_landed = len([r async for r in api.iter_trades(symbol="M2K")])
            if now_landed > landed:
                landed, stalled_since = now_landed, time.monotonic()
            elif time.monotonic() - stalled_since > 30:
                raise AssertionError(f"the resumer stalled at {landed} of {runs}")
        await anyio.sleep(0.5)  # let any straggler (there must be none) land
        for i in range(runs):
            again = await client.call_tool(
                "journal_trade", plan.arguments(i), meta=_meta(f"outage-{i}")
            )
            assert dict(again.structured_content or {})["outcome"] == "replayed"
    async with _api(app, clock) as api:
        await verify(api, plan, runs)
    return {"runs": runs, "message": pending_texts[0]}


def _api(app: Any, clock: SandboxTime | None = None) -> TradavityClient:
    """A checking client; on a drill's clock it waits out rate windows by moving it."""
    return TradavityClient(DEMO_KEY, base_url=SANDBOX, transport=SandboxTransport(app), clock=clock)


def _meta(call_id: str) -> Any:
    from ._kit import call_meta

    return call_meta(call_id)


# --- intent: double dispatch, two processes, footprint -------------------------------------


def _create_args(plan: Plan, i: int, symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "direction": "long",
        "net_pnl": 1000 + i + 0.25,
        "trade_date": "now",
        "account": plan.account,
    }


async def _count_by_pnl(api: TradavityClient, symbol: str) -> dict[float, int]:
    counts: dict[float, int] = {}
    async for row in api.iter_trades(symbol=symbol, limit=200):
        pnl = float(row.net_pnl or 0)
        counts[pnl] = counts.get(pnl, 0) + 1
    return counts


def _tally(counts: dict[float, int], runs: int) -> dict[str, int]:
    expected = [1000 + i + 0.25 for i in range(runs)]
    return {
        "runs": runs,
        "doubled": sum(1 for p in expected if counts.get(p, 0) > 1),
        "lost": sum(1 for p in expected if counts.get(p, 0) == 0),
    }


async def double_dispatch(
    runs: int, state: Path, *, ids: bool, latency_ms: int = 0
) -> dict[str, Any]:
    """Each call dispatched twice at once (as hosts do, 2-4 ms apart): under two host ids,
    or under none. One trade per run, never two, never none."""
    clock = SandboxTime()
    app = create_app(SandboxConfig(db=":memory:", clock=clock.manual))
    server = build_server(_settings(state), transport=SandboxTransport(app), clock=clock)
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    async with Client(server) as client:
        plan = await Plan.discover(client)
        if latency_ms:
            app.state.sandbox.set_faults(FaultSpec(latency_ms=latency_ms))
        for i in range(runs):
            args = _create_args(plan, i, "MCL")

            async def one(copy: int, args: dict[str, Any] = args, i: int = i) -> None:
                meta = _host_meta(f"toolu_{i}_{copy}") if ids else None
                await anyio.sleep(0.003 * copy)
                result = await client.call_tool("create_trade", args, meta=meta)
                outcome = str(dict(result.structured_content or {}).get("outcome", "error"))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, 0)
                tg.start_soon(one, 1)
        app.state.sandbox.set_faults(None)
    async with _api(app, clock) as api:
        counts = await _count_by_pnl(api, "MCL")
    return {
        **_tally(counts, runs),
        "ids": ids,
        "outcomes": outcomes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _host_meta(tool_use_id: str) -> Any:
    from mcp.types import RequestParamsMeta

    return cast(RequestParamsMeta, {"claudecode/toolUseId": tool_use_id})


async def two_processes(runs: int, state: Path, log: Path) -> dict[str, Any]:
    """Two server processes sharing one ledger (a desktop app and an IDE on one laptop)
    each get the same call, with no id, at the same moment: one trade per run."""
    app = create_app(SandboxConfig(db=":memory:"))
    started = time.perf_counter()
    with serve_in_thread(app) as api_base:
        ports = [_free_port(), _free_port()]
        # Both start at once (their start-ups overlap), then each must be ready.
        procs = [_start(api_base, state, port, log) for port in ports]
        for proc, port in zip(procs, ports, strict=True):
            _wait_ready(proc, port, log)
        outcomes: dict[str, int] = {}
        try:
            async with (
                Client(f"http://127.0.0.1:{ports[0]}/mcp") as first,
                Client(f"http://127.0.0.1:{ports[1]}/mcp") as second,
            ):
                plan = await Plan.discover(first)
                for i in range(runs):
                    args = _create_args(plan, i, "MHG")

                    async def one(client: Client, args: dict[str, Any] = args) -> None:
                        result = await client.call_tool("create_trade", args)
                        data = dict(result.structured_content or {})
                        outcome = str(data.get("outcome", "error"))
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(one, first)
                        tg.start_soon(one, second)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        async with TradavityClient(DEMO_KEY, base_url=api_base) as api:
            counts = await _count_by_pnl(api, "MHG")
    return {
        **_tally(counts, runs),
        "outcomes": outcomes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ledger_bytes(state: Path) -> int:
    """The ledger's file and its WAL, as they are on disk."""
    return sum(p.stat().st_size for p in state.glob("ledger.sqlite3*") if p.is_file())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: How much faster than real time the footprint drill's sandbox and API client run.
SPEED = 120.0


class FastClock:
    """The API client's time, `SPEED` times faster, matching the sandbox process's clock:
    the per-minute rate window paces neither side."""

    def __init__(self) -> None:
        self._clock = ScaledClock(SPEED)

    def now(self) -> float:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / SPEED)

    def jitter(self) -> float:
        return 0.5


@contextlib.contextmanager
def _sandbox_process(log: Path) -> Iterator[str]:
    """The sandbox in a process of its own, so the drill's memory is ours alone; its clock
    runs `SPEED` times faster."""
    port = _free_port()
    with log.open("ab") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradavity_mcp", "sandbox", "--port", str(port),
             "--db", ":memory:", "--clock-scale", str(SPEED)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                headers = {"Authorization": f"Bearer {DEMO_KEY}"}
                if (
                    httpx2.get(f"{base}/me", headers=headers, timeout=1, verify=TLS).status_code
                    == 200
                ):
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start; see {log}")
            time.sleep(0.05)
        yield base
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


async def footprint(
    journals: int, state: Path, *, screenshot_bytes: int = 1 << 20, writes: int = 0
) -> dict[str, Any]:
    """The ledger's size after `journals` journal_trade calls with a screenshot of
    `screenshot_bytes` each, and this process's resident memory over `writes` more
    create_trade calls (a real MCP client and our server in this process; the sandbox in
    its own, over loopback HTTP)."""
    import base64
    import gc

    # A PNG header and then noise: the sandbox checks the magic bytes, not the pixels.
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(max(0, screenshot_bytes - 8))
    data = base64.b64encode(png).decode()
    rss: list[int] = []
    with _sandbox_process(state.parent / "sandbox.log") as url:
        server = build_server(_settings(state, url), retry=FAST_RETRY, clock=FastClock())
        async with Client(server) as client:
            plan = await Plan.discover(client)
            for i in range(journals):
                args = plan.arguments(i, symbol="MBT")
                args["screenshot"] = {"data": data, "filename": f"shot-{i}.png"}
                args.pop("checklist")
                result = await client.call_tool("journal_trade", args)
                assert not result.is_error, result
            ledger_size = _ledger_bytes(state)
            for i in range(writes):
                args = {**_create_args(plan, i, "MSF"), "trade_date": "2026-11-18T10:00"}
                result = await client.call_tool("create_trade", args)
                assert not result.is_error, result
                if i % max(1, writes // 10) == 0:
                    gc.collect()
                    rss.append(_rss_bytes())
    return {
        "journals": journals,
        "screenshot_bytes": screenshot_bytes,
        "ledger_bytes": ledger_size,
        "writes": writes,
        "rss_mb": [round(r / 2**20, 1) for r in rss],
        "rss_growth_mb": round((rss[-1] - rss[1]) / 2**20, 1) if len(rss) > 2 else None,
    }
