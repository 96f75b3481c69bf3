"""The drills themselves. Tests run them small; `python -m tests.drills.run` runs them big."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

from tradavity_mcp.client import TradavityClient
from tradavity_mcp.config import Settings
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FaultSpec,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_server

from ._kit import FAST_RETRY, Plan, journal_until_known, verify

SANDBOX = "http://sandbox.local/api/v1"
DRILL_FAULTS = FaultSpec(
    drop_after_commit=0.1, error_500=0.1, deadlock_503=0.1, rate_limit_429=0.03
)


def _settings(state: Path, base_url: str = SANDBOX) -> Settings:
    return Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=base_url, state_dir=state
    )


async def exactly_once(
    runs: int, state: Path, *, faults: FaultSpec = DRILL_FAULTS, seed: int = 1
) -> dict[str, Any]:
    """N full journaling runs through a real MCP client while the API misbehaves."""
    app = create_app(SandboxConfig(db=":memory:", fault_seed=seed))
    sandbox = app.state.sandbox
    server = build_server(_settings(state), transport=SandboxTransport(app), retry=FAST_RETRY)
    started = time.perf_counter()
    async with Client(server) as client:
        plan = await Plan.discover(client)
        sandbox.set_faults(faults)
        for i in range(runs):
            await journal_until_known(client.call_tool, plan.arguments(i), f"drill-{seed}-{i}")
        sandbox.set_faults(None)
    async with TradavityClient(DEMO_KEY, base_url=SANDBOX, transport=SandboxTransport(app)) as api:
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
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx2.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


async def crash_and_resume(runs: int, state: Path, log: Path) -> dict[str, Any]:
    """SIGKILL the server in the middle of journaling, start it again, re-issue the calls."""
    # 120 ms per API request: a journaling run takes over half a second, so a kill 0.2 s in
    # lands while its writes are in flight.
    app = create_app(SandboxConfig(db=":memory:", faults=FaultSpec(latency_ms=120)))
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
                    with anyio.move_on_after(0.2 if crash_now else 120) as scope:
                        await journal_until_known(client.call_tool, plan.arguments(i), f"crash-{i}")
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
    app = create_app(SandboxConfig(db=":memory:"))
    transport = Outage(SandboxTransport(app))
    server = build_server(
        _settings(state), transport=transport, retry=FAST_RETRY, resume_interval=0.1
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
        # The background resumer finishes them; nobody calls again.
        with anyio.fail_after(30):
            while True:
                await anyio.sleep(0.1)
                rows = [r async for r in _api(app).iter_trades(symbol="M2K")]
                if len(rows) >= runs:
                    break
        await anyio.sleep(0.5)  # let any straggler (there must be none) land
        for i in range(runs):
            again = await client.call_tool(
                "journal_trade", plan.arguments(i), meta=_meta(f"outage-{i}")
            )
            assert dict(again.structured_content or {})["outcome"] == "replayed"
    async with _api(app) as api:
        await verify(api, plan, runs)
    return {"runs": runs, "message": pending_texts[0]}


def _api(app: Any) -> TradavityClient:
    return TradavityClient(DEMO_KEY, base_url=SANDBOX, transport=SandboxTransport(app))


def _meta(call_id: str) -> Any:
    from ._kit import call_meta

    return call_meta(call_id)
