"""Helpers shared by the end-to-end tests and the drills (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, RequestParamsMeta, TextContent
from PIL import Image
from playwright.async_api import Browser, async_playwright

from tradavity_mcp.api.client import RetryPolicy
from tradavity_mcp.sandbox import ManualClock

#: The tests' HTTP clients speak plain HTTP on loopback; one TLS context for all of them
#: spares each new client loading the trust store (~18 ms of CPU, hundreds of times).
TLS = httpx2.create_ssl_context()

#: When this test process started. A sandbox whose clock starts here shares the demo
#: journal seeded for the first one (the sandbox keeps what it seeded, by moment).
NOW = time.time()

#: Drills retry at once: the faults are what is under test, not the backoff.
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.02, max_retry_after=5)


SANDBOX_URL = "http://sandbox.local/api/v1"


class SandboxTime:
    """One clock for a test's sandbox, API client and server (`build_server(clock=...)`):
    it stands still until something waits, and a wait (a `Retry-After`, a rate window, a
    cooldown) moves it instead of sleeping."""

    def __init__(self, manual: ManualClock | None = None) -> None:
        self.manual = manual or ManualClock()

    def now(self) -> float:
        return self.manual.now()

    async def sleep(self, seconds: float) -> None:
        self.manual.advance(seconds)
        await anyio.lowlevel.checkpoint()

    def jitter(self) -> float:
        return 0.5


def png_bytes(colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="PNG")
    return out.getvalue()


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


@asynccontextmanager
async def http_transport(base: str, key: str) -> AsyncIterator[Any]:
    """Streamable HTTP with a bearer key; the SDK leaves a client we hand it open."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"}, timeout=30, verify=TLS
        ) as http,
        streamable_http_client(f"{base}/mcp", http_client=http) as streams,
    ):
        yield streams


def meta(values: dict[str, str]) -> RequestParamsMeta:
    """Custom `_meta` keys (hosts' tool-use ids, ours) as the SDK's open TypedDict."""
    return cast(RequestParamsMeta, values)


def plain_trade(pnl: float) -> dict[str, Any]:
    """A create_trade on the demo journal's account, told apart by its P&L."""
    return {
        "symbol": "MNQ",
        "direction": "long",
        "net_pnl": pnl,
        "trade_date": "2026-11-20T09:31",
        "account": "Apex 50K",
    }


def sandbox_writes(app: Any) -> int:
    """How many writes (any non-GET request) a sandbox app has received."""
    return sum(1 for r in app.state.sandbox.request_log if r.method != "GET")


def me_checks(app: Any, status: int) -> int:
    """How many `/me` requests a sandbox app answered with `status` (key checks: 200 a
    key accepted, 401 one refused, 429 the pre-auth limit)."""
    log = app.state.sandbox.request_log
    return sum(1 for r in log if r.path.endswith("/me") and r.status == status)


def junk_key() -> str:
    """A key of the right shape that the sandbox never issued (what scanners send)."""
    return "tvty_" + secrets.token_hex(24)


#: Debian's chromium, as Playwright drives it here (never `playwright install`).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright with the system browser."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()
