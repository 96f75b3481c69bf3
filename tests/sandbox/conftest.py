"""A fresh sandbox per test, served over real HTTP on loopback, on a clock tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxState,
    create_app,
    serve_in_thread,
)

START = 1_795_000_000.0  # 2026-11-18 (a Wednesday), 10:26 UTC


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


@pytest.fixture
def served() -> Iterator[tuple[str, ManualClock, SandboxState]]:
    clock = ManualClock(START)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    with serve_in_thread(app) as base:
        yield base, clock, app.state.sandbox


@pytest.fixture
async def live(served: tuple[str, ManualClock, SandboxState]) -> AsyncIterator[Live]:
    base, clock, state = served
    async with httpx2.AsyncClient(timeout=30) as http:
        yield Live(base, clock, state, http)
