"""Fixtures for end-to-end tests: a real MCP client, our server, the sandbox API."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
)
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import NOW, SANDBOX_URL, SandboxTime, png_bytes


@dataclass
class Env:
    """One test's world: the sandbox app, its clock, settings and a verifying API client."""

    app: Any
    clock: ManualClock
    settings: Settings
    charts: Path
    api: TradavityClient

    def server(self, **kwargs: Any) -> MCPServer:
        """Our server on this world's sandbox, on the sandbox's clock unless told."""
        kwargs.setdefault("clock", SandboxTime(self.clock))
        return build_server(self.settings, transport=SandboxTransport(self.app), **kwargs)

    @property
    def sandbox(self) -> Any:
        return self.app.state.sandbox


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    charts = tmp_path / "charts"
    charts.mkdir()
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY},
        base_url=SANDBOX_URL,
        state_dir=tmp_path / "state",
        allowed_dirs=[str(charts)],
    )
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        yield Env(app=app, clock=clock, settings=settings, charts=charts, api=api)


@pytest.fixture(params=["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(env: Env, era: str) -> AsyncIterator[Client]:
    async with Client(env.server(), mode=era) as c:
        yield c


Call = Callable[..., Awaitable[CallToolResult]]


@pytest.fixture
def b64png() -> str:
    return base64.b64encode(png_bytes()).decode()


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """Every e2e test also checks the key never reached a log record."""
    caplog.set_level(logging.DEBUG)
    yield
    assert DEMO_KEY not in caplog.text
    assert DEMO_KEY[5:] not in caplog.text
