"""journal_trade as a dependency graph: which requests are in flight together.

A structural test, not a timing: the transport holds every request until the test lets
the whole batch through, and records each batch. A batch is one round trip of latency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import SANDBOX_URL, data_of

pytestmark = pytest.mark.anyio


#: How long no new request must arrive for a round to be over (see `let_through_until`).
SETTLE = 0.4


class Gate(httpx2.AsyncBaseTransport):
    """The sandbox behind a gate: while `holding`, each request waits to be let through."""

    def __init__(self, app: Any) -> None:
        self.inner = SandboxTransport(app)
        self.holding = False
        self.held: list[tuple[str, anyio.Event]] = []
        self.batches: list[set[str]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.holding:
            gate = anyio.Event()
            path = request.url.path.removeprefix("/api/v1")
            self.held.append((f"{request.method} {path}", gate))
            await gate.wait()
        return await self.inner.handle_async_request(request)

    async def let_through_until(self, done: anyio.Event) -> None:
        """Release what is waiting, a batch at a time, once no more requests arrive."""
        while not done.is_set():
            seen = -1
            # Settle: every request of this round is here. Between two requests of one
            # round the server may wait on a worker thread (the ledger, a file), which a
            # loaded machine can leave unscheduled for a while: the round is over only
            # once nothing new arrived for SETTLE seconds.
            while len(self.held) != seen:
                seen = len(self.held)
                await anyio.sleep(SETTLE)
            if self.held:
                batch, self.held = self.held, []
                self.batches.append({label for label, _ in batch})
                for _, gate in batch:
                    gate.set()


def _journal(symbol: str, pnl: float, b64png: str) -> dict[str, Any]:
    return {
        "trade": {
            "symbol": symbol,
            "direction": "long",
            "net_pnl": pnl,
            "trade_date": "2026-11-20T09:31",
            "account": "Apex 50K",
        },
        "tags": ["fomo", "a+ setup"],
        "screenshot": {"data": b64png, "filename": "chart.png"},
        "checklist": {"protocol": "pre_trade", "answers": {"*": "yes"}, "status": "draft"},
        "executions": {"entries": [{"price": 21000, "quantity": 1}], "exits": []},
    }


async def _journal_through_gate(client: Client, gate: Gate, args: dict[str, Any]) -> int:
    done = anyio.Event()
    number: list[int] = []

    async def call() -> None:
        try:
            number.append(data_of(await client.call_tool("journal_trade", args))["trade_number"])
        finally:
            done.set()

    gate.batches.clear()
    gate.holding = True
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        tg.start_soon(gate.let_through_until, done)
    gate.holding = False
    return number[0]


async def test_reads_together_then_the_parts_together(tmp_path: Path, b64png: str) -> None:
    app = create_app(SandboxConfig(db=":memory:"))
    gate = Gate(app)
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY}, base_url=SANDBOX_URL, state_dir=tmp_path
    )
    async with Client(build_server(settings, transport=gate)) as client:
        await client.list_tools()  # the server has read /me once, as at any start
        number = await _journal_through_gate(client, gate, _journal("MNQ", 11.5, b64png))
        cold = list(gate.batches)
        warm_number = await _journal_through_gate(client, gate, _journal("MES", 12.5, b64png))
        warm = list(gate.batches)

    # Cold: the reference reads in one round; the trade with the checklist's items in the
    # next; every part of the trade in the last. Three round trips.
    reads = {"GET /accounts", "GET /tags", "GET /protocols"}
    assert reads <= cold[0], cold
    assert "POST /trades" in cold[1], cold
    assert any(label.startswith("GET /protocols/") for label in cold[1]), cold
    parts = {
        f"PUT /trades/{number}/tags",
        f"POST /trades/{number}/screenshots",
        f"PUT /trades/{number}/executions",
    }
    assert parts <= cold[2], cold
    assert any(label.endswith("/responses") for label in cold[2]), cold
    assert len(cold) == 3, cold
    # Warm: the trade, then its parts together. Two round trips.
    assert warm[0] == {"POST /trades"}, warm
    assert {p.replace(str(number), str(warm_number)) for p in parts} <= warm[1], warm
    assert len(warm) == 2, warm
