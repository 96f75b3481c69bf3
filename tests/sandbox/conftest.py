"""A fresh sandbox per test, served over real HTTP on loopback, on a clock tests move.

One uvicorn server runs for the whole session; each test swaps a freshly seeded sandbox
app in behind it, so tests stay isolated without paying for a server start each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxState,
    create_app,
    serve_in_thread,
)

from ..kit import TLS

START = 1_795_000_000.0  # 2026-11-18 (a Wednesday), 11:06:40 UTC


class Switch:
    """An ASGI app that forwards to whichever sandbox the current test installed."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no sandbox installed"
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def server() -> Iterator[tuple[str, Switch]]:
    switch = Switch()
    with serve_in_thread(switch) as base:
        yield base, switch


@dataclass
class Live:
    base: str
    clock: ManualClock
    state: SandboxState
    http: httpx2.AsyncClient

    async def call(
        self, method: str, path: str, key: str = DEMO_KEY, **kwargs: Any
    ) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return await self.http.request(method, self.base + path, headers=headers, **kwargs)

    async def data(self, method: str, path: str, key: str = DEMO_KEY, **kwargs: Any) -> Any:
        """The `data` of a call that must succeed."""
        resp = await self.call(method, path, key, **kwargs)
        assert resp.is_success, resp.text
        return resp.json()["data"] if resp.content else None


@pytest.fixture
def served(server: tuple[str, Switch]) -> Iterator[tuple[str, ManualClock, SandboxState]]:
    base, switch = server
    clock = ManualClock(START)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    switch.app = app
    try:
        yield base, clock, app.state.sandbox
    finally:
        switch.app = None


@pytest.fixture
async def live(served: tuple[str, ManualClock, SandboxState]) -> AsyncIterator[Live]:
    base, clock, state = served
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        yield Live(base, clock, state, http)
