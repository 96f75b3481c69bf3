"""Benchmarks, run by hand: `python -m tests.benchmarks.bench` (prints a Markdown table).

Every figure is measured side by side in one run, alternating the two sides, and reported
as medians and ratios: this machine is shared and noisy, absolute times drift.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from tradavity_mcp.api.client import RetryPolicy, TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    FREE_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    ScaledClock,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_server
from tradavity_mcp.server.read import RESULT_BUDGET
from tradavity_mcp.settings import Settings

FLOOR = '''
from mcp.server.mcpserver import MCPServer
mcp = MCPServer("floor")
@mcp.tool()
def ping(text: str) -> str:
    """Echo."""
    return text
mcp.run()
'''

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def _spawn_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to the initialize answer, and to the tools/list answer."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin
    assert proc.stdout
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    proc.stdout.readline()
    t_init = time.perf_counter() - start
    proc.stdin.write((json.dumps(INITIALIZED) + "\n" + json.dumps(LIST) + "\n").encode())
    proc.stdin.flush()
    proc.stdout.readline()
    t_list = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return t_init, t_list


def cold_start(rounds: int = 9) -> dict[str, Any]:
    app = create_app(SandboxConfig(db=":memory:"))
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(app) as base:
        floor = Path(tmp) / "floor.py"
        floor.write_text(FLOOR)
        env = {
            **os.environ,
            "TRADAVITY_API_KEY": DEMO_KEY,
            "TRADAVITY_BASE_URL": base,
            "TRADAVITY_STATE_DIR": str(Path(tmp) / "state"),
        }
        ours: list[tuple[float, float]] = []
        base_: list[tuple[float, float]] = []
        for _ in range(rounds):  # alternate, so drift hits both sides alike
            base_.append(_spawn_once([sys.executable, str(floor)], env))
            ours.append(_spawn_once([sys.executable, "-m", "tradavity_mcp"], env))
    med = {
        name: [statistics.median(x[i] for x in runs) for i in (0, 1)]
        for name, runs in (("ours", ours), ("floor", base_))
    }
    return {
        "init_ms": (round(med["ours"][0] * 1000), round(med["floor"][0] * 1000)),
        "list_ms": (round(med["ours"][1] * 1000), round(med["floor"][1] * 1000)),
        "init_ratio": round(med["ours"][0] / med["floor"][0], 3),
        "list_ratio": round(med["ours"][1] / med["floor"][1], 3),
    }


async def overhead(n: int = 150) -> dict[str, Any]:
    """create_trade through an in-memory MCP client vs the same POST with the API client."""
    app = create_app(SandboxConfig(db=":memory:"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY},
            base_url="http://sandbox.local/api/v1",
            state_dir=tmp,
        )
        server = build_server(settings, transport=SandboxTransport(app))
        async with (
            Client(server) as client,
            TradavityClient(
                DEMO_KEY, base_url="http://sandbox.local/api/v1", transport=SandboxTransport(app)
            ) as api,
        ):
            body = {
                "symbol": "MES",
                "direction": "long",
                "trade_date": "2026-11-18T15:00:00Z",
                "account": "Apex 50K",
            }
            await client.call_tool("create_trade", {**body, "net_pnl": -1})  # warm caches
            via_mcp: list[float] = []
            direct: list[float] = []
            for i in range(n):
                t = time.perf_counter()
                result = await client.call_tool("create_trade", {**body, "net_pnl": i + 0.01})
                via_mcp.append(time.perf_counter() - t)
                assert not result.is_error
                t = time.perf_counter()
                direct_body = {k: v for k, v in body.items() if k != "account"}
                await api.create_trade(
                    {**direct_body, "account_id": 1, "net_pnl": i + 0.02},
                    idempotency_key=f"bench-{i}",
                )
                direct.append(time.perf_counter() - t)
    mcp_ms, api_ms = statistics.median(via_mcp) * 1000, statistics.median(direct) * 1000
    return {
        "mcp_ms": round(mcp_ms, 2),
        "api_ms": round(api_ms, 2),
        "added_ms": round(mcp_ms - api_ms, 2),
        "ratio": round(mcp_ms / api_ms, 2),
    }


async def requests_per_trade() -> dict[str, Any]:
    """API requests for one fully journaled trade (tags by name, screenshot, checklist by
    labels): on a cold server, then warm."""
    app = create_app(SandboxConfig(db=":memory:"))
    counters = app.state.sandbox.counters
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY},
            base_url="http://sandbox.local/api/v1",
            state_dir=tmp,
        )
        async with Client(build_server(settings, transport=SandboxTransport(app))) as client:
            await client.list_tools()  # start-up reads /me for the scopes
            plan_client = client
            # The arguments a model would send, names and labels only.
            answers = {"*": "yes", "Bias": "long", "Conviction": 4}
            trade: dict[str, Any] = {
                "symbol": "MNQ",
                "direction": "long",
                "net_pnl": 48,
                "trade_date": "2026-11-18T09:31",
                "account": "Apex 50K",
            }
            args: dict[str, Any] = {
                "trade": trade,
                "tags": ["FOMO", "breakout"],
                "screenshot": {"data": "iVBORw0KGgo=", "filename": "c.png"},
                "checklist": {"protocol": "pre_trade", "answers": answers},
            }
            before = counters["requests"]
            cold = await plan_client.call_tool("journal_trade", args)
            cold_n = counters["requests"] - before
            before = counters["requests"]
            warm = await plan_client.call_tool(
                "journal_trade", {**args, "trade": {**trade, "net_pnl": 49}}
            )
            warm_n = counters["requests"] - before
    assert not cold.is_error
    assert not warm.is_error
    return {"cold": cold_n, "warm": warm_n, "floor": 4}


async def tools_list_size() -> dict[str, Any]:
    app = create_app(SandboxConfig(db=":memory:"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY},
            base_url="http://sandbox.local/api/v1",
            state_dir=tmp,
        )
        async with Client(build_server(settings, transport=SandboxTransport(app))) as client:
            tools = (await client.list_tools()).tools
        with_schemas = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY},
            base_url="http://sandbox.local/api/v1",
            state_dir=tmp,
            output_schemas=True,
        )
        async with Client(build_server(with_schemas, transport=SandboxTransport(app))) as client:
            full = (await client.list_tools()).tools
    size = len(
        json.dumps(
            [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
            separators=(",", ":"),
        )
    )
    full_size = len(
        json.dumps(
            [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in full],
            separators=(",", ":"),
        )
    )
    return {
        "tools": len(tools),
        "chars": size,
        "tokens_est": size // 4,
        "chars_with_output_schemas": full_size,
    }


class _Scaled:
    """The client's clock, on the sandbox's sped-up time."""

    def __init__(self, clock: ScaledClock, factor: float) -> None:
        self.clock, self.factor = clock, factor

    def now(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.factor)

    def jitter(self) -> float:
        return 0.5


async def free_tier_throughput(calls: int = 150, factor: float = 30.0) -> dict[str, Any]:
    """Calling flat out on a free key (60 requests/minute), sandbox time sped up x30."""
    clock = ScaledClock(factor)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    log = app.state.sandbox.request_log
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": FREE_KEY},
            base_url="http://sandbox.local/api/v1",
            state_dir=tmp,
        )
        server = build_server(
            settings,
            transport=SandboxTransport(app),
            api_clock=_Scaled(clock, factor),
            retry=RetryPolicy(max_retry_after=120),
        )
        async with Client(server) as client:
            await client.list_tools()
            start, first = clock.now(), len(log)
            errors_seen = 0
            for i in range(calls):
                if i % 10 == 0:
                    result = await client.call_tool(
                        "create_trade",
                        {
                            "symbol": "MES",
                            "direction": "long",
                            "net_pnl": i + 0.5,
                            "trade_date": "2026-11-18T10:00",
                        },
                    )
                else:
                    result = await client.call_tool("find_trades", {"limit": 5})
                errors_seen += int(result.is_error)
            elapsed_min = (clock.now() - start) / 60
    window = log[first:]
    # A 60-second sliding window admits 60 at once, then one per slot that ages out:
    # n requests need at least ceil(n / 60) - 1 minutes.
    best = math.ceil(len(window) / 60) - 1
    return {
        "calls": calls,
        "requests": len(window),
        "sandbox_minutes": round(elapsed_min, 2),
        "best_minutes": best,
        "share_of_limit": round(best / elapsed_min, 3),
        "429_absorbed": sum(1 for r in window if r.status == 429),
        "errors_to_model": errors_seen,
    }


async def read_sizes(days: int = 730) -> dict[str, Any]:
    """Characters of every read result (as sent) on a `days`-long journal, the largest
    arguments each (the walk of tests/e2e/test_read_budget.py), one trade with 200 fills."""
    from tests.e2e.test_read_budget import TEMPLATE_READS, TOOL_READS

    clock = ManualClock()
    app = create_app(SandboxConfig(db=":memory:", clock=clock, demo_days=days))
    url = "http://sandbox.local/api/v1"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=url, state_dir=tmp
        )
        async with (
            TradavityClient(DEMO_KEY, base_url=url, transport=SandboxTransport(app)) as api,
            Client(build_server(settings, transport=SandboxTransport(app))) as client,
        ):
            big = (await api.list_trades(limit=1)).items[0].trade_number
            fills = [{"price": 21000 + i / 4, "quantity": 1} for i in range(100)]
            await api.set_executions(
                big, {"entries": fills, "exits": fills}, idempotency_key="bench-fills"
            )
            clock.advance(20 * 3600)
            sizes: dict[str, int] = {}
            for name, args in [*TOOL_READS, ("get_trade", {"trade_number": big})]:
                result = await client.call_tool(name, args)
                sizes[f"{name} {json.dumps(args)}"] = len(
                    result.model_dump_json(by_alias=True, exclude_none=True)
                )
            await client.read_resource("tradavity://sync/status")
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            uris += [u.format(big=big) for group in TEMPLATE_READS.values() for u in group]
            for uri in uris:
                result_r = await client.read_resource(uri)
                sizes[uri] = len(result_r.model_dump_json(by_alias=True, exclude_none=True))
    trades = len(app.state.sandbox.store.all("trade", 1))
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
    tools = [kv for kv in ranked if not kv[0].startswith("tradavity://")]
    resources = [kv for kv in ranked if kv[0].startswith("tradavity://")]
    return {
        "days": days,
        "trades": trades,
        "reads": len(sizes),
        "budget": RESULT_BUDGET,
        "largest_tool": tools[0],
        "largest_resource": resources[0],
        "top": ranked[:6],
    }


async def _async_parts() -> dict[str, Any]:
    return {
        "overhead": await overhead(),
        "requests": await requests_per_trade(),
        "tools_list": await tools_list_size(),
        "free_tier": await free_tier_throughput(),
        "read_sizes": await read_sizes(),
    }


def main() -> None:
    if sys.argv[1:] == [
        "read-sizes"
    ]:  # just this part: `python -m tests.benchmarks.bench read-sizes`
        print(json.dumps(anyio.run(read_sizes), indent=1))
        return
    results = {"cold_start": cold_start(), **anyio.run(_async_parts)}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}\n")
    c, o, r, t, f, z = (
        results[k]
        for k in ("cold_start", "overhead", "requests", "tools_list", "free_tier", "read_sizes")
    )
    print("| Benchmark | Result | Goal |")
    print("| --- | --- | --- |")
    print(
        f"| Cold start to `initialize` answered | {c['init_ms'][0]} ms vs {c['init_ms'][1]} ms "
        f"for a one-tool MCPServer: **{c['init_ratio']}x** | within 1.15x |"
    )
    print(
        f"| Cold start to `tools/list` answered | {c['list_ms'][0]} ms vs {c['list_ms'][1]} ms: "
        f"**{c['list_ratio']}x** | within 1.15x |"
    )
    print(
        f"| Overhead per `create_trade` (median) | {o['mcp_ms']} ms through MCP vs "
        f"{o['api_ms']} ms direct: **+{o['added_ms']} ms** | under 2 ms |"
    )
    print(
        f"| API requests per fully journaled trade | **{r['warm']} warm, {r['cold']} cold** "
        f"(floor {r['floor']} writes) | 4 warm, at most 7 cold |"
    )
    print(
        f"| tools/list | **{t['chars']} characters, ~{t['tokens_est']} tokens**, {t['tools']} "
        f"tools ({t['chars_with_output_schemas']} with --output-schemas) | within 12,000 |"
    )
    print(
        f"| Free tier, 60 requests/minute, clock x30 | {f['calls']} calls, {f['requests']} "
        f"requests in {f['sandbox_minutes']} sandbox minutes (the window allows "
        f"{f['best_minutes']}): **{f['share_of_limit']:.1%} of the limit used**, "
        f"{f['429_absorbed']} 429s absorbed, **{f['errors_to_model']} reached the model** | none |"
    )
    print(
        f"| Largest read result, {z['days']}-day journal ({z['trades']} trades, "
        f"{z['reads']} reads) | tool **{z['largest_tool'][1]:,}** characters "
        f"(`{z['largest_tool'][0]}`), resource **{z['largest_resource'][1]:,}** "
        f"(`{z['largest_resource'][0]}`) | within {z['budget']:,} |"
    )
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
