"""The shared secret (`TRADAVITY_MCP_SECRET_KEY`) keys the SDK's request state: a
2026-07-28 multi-round-trip call started on one server finishes on another given the
same secret, and is refused by one with another secret. Two real HTTP servers; the
client's second round is sent to the other one, as a load balancer without affinity may."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitResult

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.api.errors import NotFound
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_http_app, build_server
from tradavity_mcp.settings import ConfigError, Settings

from ...kit import SANDBOX_URL, TLS, data_of, plain_trade, text_of

pytestmark = pytest.mark.anyio

SECRET = "a-shared-secret-of-enough-length-" + "7" * 16


class SecondRoundElsewhere(httpx2.AsyncBaseTransport):
    """Sends every request to the first server, except a call's later round (it carries
    the `requestState` the first round sealed), which goes to the second."""

    def __init__(self, first: str, second: str) -> None:
        self.first, self.second = httpx2.URL(first), httpx2.URL(second)
        self.inner = httpx2.AsyncHTTPTransport(verify=TLS)
        self.later_rounds = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        if b'"requestState"' in body:
            self.later_rounds += 1
            request.url = request.url.copy_with(host=self.second.host, port=self.second.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.contextmanager
def _replica(tmp_path: Path, sandbox: Any, secret: str | None) -> Iterator[str]:
    environ = {"TRADAVITY_API_KEY": DEMO_KEY}
    if secret is not None:
        environ["TRADAVITY_MCP_SECRET_KEY"] = secret
    settings = Settings.load(environ=environ, base_url=SANDBOX_URL, state_dir=tmp_path)
    server = build_server(settings, transport=SandboxTransport(sandbox), stdio=False)
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        yield base


async def _archive_across(tmp_path: Path, secrets: tuple[str | None, str | None]) -> Any:
    """Journal a trade on A, then archive it with the confirmation's second round on B;
    (the tool result, how many later rounds went to B, whether the trade is still there)."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    asked: list[str] = []

    async def confirm(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    with (
        _replica(tmp_path / "a", sandbox, secrets[0]) as a,
        _replica(tmp_path / "b", sandbox, secrets[1]) as b,
    ):
        router = SecondRoundElsewhere(a, b)
        async with (
            httpx2.AsyncClient(transport=router, timeout=30, verify=TLS) as http,
            Client(
                streamable_http_client(f"{a}/mcp", http_client=http),
                mode="2026-07-28",
                elicitation_callback=confirm,
            ) as client,
        ):
            made = data_of(await client.call_tool("create_trade", plain_trade(61.25)))
            number = made["trade_number"]
            try:
                result: Any = await client.call_tool("archive_trade", {"trade_number": number})
            except MCPError as exc:  # a refused round
                result = exc
    assert asked  # the first round, on A, asked for the confirmation
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(sandbox)
    ) as api:
        try:
            await api.get_trade(number)
            still_there = True
        except NotFound:
            still_there = False
    return result, router.later_rounds, still_there


async def test_a_call_started_on_one_replica_finishes_on_another(tmp_path: Path) -> None:
    result, later_rounds, still_there = await _archive_across(tmp_path, (SECRET, SECRET))
    assert later_rounds == 1
    assert data_of(result)["archived"] == 1, text_of(result)
    assert not still_there


async def test_another_secret_cannot_open_the_state(tmp_path: Path) -> None:
    """The control: a replica with another secret refuses the second round."""
    other = "another-secret-of-enough-length-" + "8" * 16
    result, later_rounds, still_there = await _archive_across(tmp_path, (SECRET, other))
    assert later_rounds == 1
    assert isinstance(result, MCPError)
    assert result.error.data == {"reason": "invalid_request_state"}
    assert still_there


def test_a_short_secret_is_refused_when_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRADAVITY_MCP_SECRET_KEY must be at least 32"):
        Settings.load(
            environ={"TRADAVITY_API_KEY": DEMO_KEY, "TRADAVITY_MCP_SECRET_KEY": "short"},
            state_dir=tmp_path,
        )
