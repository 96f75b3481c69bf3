"""Every way in over real loopback HTTP: streamable HTTP and SSE, both eras, hosted auth."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import LoggingFnT
from mcp.client.sse import sse_client
from mcp.types import CallToolResult, ImageContent
from pydantic import SecretStr

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    EXPIRED_KEY,
    REVOKED_KEY,
    SECOND_PRO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.settings import Settings

from ..kit import TLS, data_of, http_transport, text_of

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-" + "x" * 40


def _serve(tmp_path: Path, kind: str, auth: str) -> Iterator[str]:
    sandbox = create_app(SandboxConfig(db=":memory:"))
    settings = Settings.load(
        environ={} if auth == "per-user" else {"TRADAVITY_API_KEY": DEMO_KEY},
        base_url="http://sandbox.local/api/v1",
        state_dir=tmp_path / "state",
        require_key=auth != "per-user",
    )
    hosted = HostedOptions(
        auth=auth,  # type: ignore[arg-type]
        token=SecretStr(TOKEN) if auth == "token" else None,
        public_url="http://127.0.0.1",
    )
    server = build_server(settings, transport=SandboxTransport(sandbox), stdio=False, hosted=hosted)
    app = build_http_app(server, kind="sse" if kind == "sse" else "http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        yield base


@pytest.fixture
def per_user(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, "http", "per-user")


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, "http", "token")


@pytest.fixture
def sse_server(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, "sse", "per-user")


def _http(base: str, key: str) -> Any:
    return http_transport(base, key)


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_streamable_http_both_eras(per_user: str, era: str) -> None:
    async with Client(_http(per_user, DEMO_KEY), mode=era) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"journal_trade", "find_trades", "sync_status"} <= names
        page = data_of(await client.call_tool("find_trades", {"limit": 3}))
        assert page["count"] == 3


async def test_sse_transport(sse_server: str) -> None:
    transport = sse_client(f"{sse_server}/sse", headers={"Authorization": f"Bearer {DEMO_KEY}"})
    async with Client(transport, mode="legacy") as client:
        me = data_of(await client.call_tool("lookup", {"name": "me"}))
        assert me["user"]["name"] == "Dana Demo"


async def test_auth_refusals(per_user: str, token_server: str) -> None:
    async with httpx2.AsyncClient(verify=TLS) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        # What a remote user reads: the same words in the challenge and in the body.
        for base, headers, says in [
            (per_user, {}, "no credentials: send Authorization: Bearer"),
            (
                per_user,
                {"Authorization": "Bearer tvty_" + "9" * 48},
                "Tradavity does not know this API key (mistyped, or deleted)",
            ),
            (
                per_user,
                {"Authorization": f"Bearer {REVOKED_KEY}"},
                "this Tradavity API key was revoked: create a new one",
            ),
            (
                per_user,
                {"Authorization": f"Bearer {EXPIRED_KEY}"},
                "this Tradavity API key has expired: create a new one",
            ),
            (
                per_user,
                {"Authorization": "Bearer not-a-key"},
                "this is not a Tradavity API key (tvty_ followed by 48 characters)",
            ),
            (
                token_server,
                {"Authorization": f"Bearer {DEMO_KEY}"},
                "this is not the server's token",
            ),
        ]:
            resp = await http.post(
                f"{base}/mcp",
                json=body,
                headers={**headers, "Accept": "application/json, text/event-stream"},
            )
            assert resp.status_code == 401
            challenge = resp.headers["www-authenticate"]
            assert challenge.startswith("Bearer")
            assert "resource_metadata" in challenge
            described = resp.json()["error_description"]
            assert described.startswith(says), described
            assert f'error_description="{described}"' in challenge
            for key in (DEMO_KEY, REVOKED_KEY, EXPIRED_KEY):
                assert key not in resp.text + challenge
        health = await http.get(f"{per_user}/healthz")
        assert health.json()["ok"] is True
        rebinding = await http.post(
            f"{per_user}/mcp",
            json=body,
            headers={
                "Host": "evil.example.com",
                "Authorization": f"Bearer {DEMO_KEY}",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert rebinding.status_code in {401, 421}
    async with Client(_http(token_server, TOKEN)) as client:
        assert (
            data_of(await client.call_tool("lookup", {"name": "me"}))["user"]["name"] == "Dana Demo"
        )


async def test_per_user_isolation_with_two_users_journaling_at_once(per_user: str) -> None:
    results: dict[str, dict[str, Any]] = {}

    async def journal(key: str, pnl: float) -> None:
        async with Client(_http(per_user, key)) as client:
            account = data_of(await client.call_tool("lookup", {"name": "accounts"}))["items"][0]
            result = data_of(
                await client.call_tool(
                    "create_trade",
                    {
                        "symbol": "MNQ",
                        "direction": "long",
                        "net_pnl": pnl,
                        "trade_date": "2026-11-20T10:00",
                        "account": account["name"],
                    },
                )
            )
            tags = data_of(await client.call_tool("lookup", {"name": "tags"}))["items"]
            mine = data_of(await client.call_tool("find_trades", {"symbol": "MNQ", "limit": 200}))
            results[key] = {
                "trade": result,
                "account": account["name"],
                "tags": {t["name"] for t in tags},
                "pnls": {t["net_pnl"] for t in mine["trades"]},
            }

    async with anyio.create_task_group() as tg:
        tg.start_soon(journal, DEMO_KEY, 111.11)
        tg.start_soon(journal, SECOND_PRO_KEY, 222.22)
    demo, second = results[DEMO_KEY], results[SECOND_PRO_KEY]
    assert demo["account"] != second["account"]
    assert 111.11 in demo["pnls"]
    assert 222.22 not in demo["pnls"]
    assert 222.22 in second["pnls"]
    assert 111.11 not in second["pnls"]
    assert "FOMO" in demo["tags"]
    assert "FOMO" not in second["tags"]
    # Another user's trade number is simply not theirs.
    async with Client(_http(per_user, SECOND_PRO_KEY)) as client:
        other = await client.call_tool("get_trade", {"trade_number": demo["trade"]["trade_number"]})
        assert other.is_error or data_of(other)["net_pnl"] != 111.11
        assert DEMO_KEY not in text_of(other)


async def test_a_long_calendar_picture_stalls_no_one(per_user: str) -> None:
    """Issue #31: one user's 27-year calendar picture held the event loop for 26 s. Now,
    while one user draws it (twice at once: both drawing threads busy), /healthz
    and another user's find_trades answer within a second, and each picture answers (or
    is refused in words) within 10 s."""
    args = {"from_date": "2000-01-01", "to_date": "2026-12-31", "format": "image"}
    pictures: list[tuple[float, CallToolResult]] = []
    waits: dict[str, list[float]] = {"healthz": [], "find_trades": []}
    during: dict[str, int] = {"healthz": 0, "find_trades": 0}

    async with (
        Client(_http(per_user, DEMO_KEY)) as drawer,
        Client(_http(per_user, SECOND_PRO_KEY)) as other,
        httpx2.AsyncClient(verify=TLS) as http,
    ):
        theirs = data_of(await other.call_tool("find_trades", {"limit": 20}))["count"]
        assert theirs > 0
        pending = 2

        async def draw() -> None:
            nonlocal pending
            began = time.monotonic()
            result = await drawer.call_tool("get_calendar", args)
            pictures.append((time.monotonic() - began, result))
            pending -= 1

        async def probe(name: str, call: Callable[[], Awaitable[Any]]) -> None:
            while pending:
                began = time.monotonic()
                await call()
                waits[name].append(time.monotonic() - began)
                during[name] += bool(pending)
                await anyio.sleep(0.02)

        async def health() -> None:
            assert (await http.get(f"{per_user}/healthz")).json()["ok"] is True

        async def trades() -> None:
            page = data_of(await other.call_tool("find_trades", {"limit": 20}))
            assert page["count"] == theirs

        async with anyio.create_task_group() as tg:
            for _ in range(pending):
                tg.start_soon(draw)
            tg.start_soon(probe, "healthz", health)
            tg.start_soon(probe, "find_trades", trades)
    print(
        "pictures (s):", [round(s, 2) for s, _ in pictures],
        "| healthz max (s):", round(max(waits["healthz"]), 3), f"of {len(waits['healthz'])}",
        "| find_trades max (s):", round(max(waits["find_trades"]), 3),
        f"of {len(waits['find_trades'])}",
    )  # fmt: skip
    assert during["healthz"] >= 3
    assert during["find_trades"] >= 1
    assert max(waits["healthz"]) < 1.0, waits["healthz"]
    assert max(waits["find_trades"]) < 1.0, waits["find_trades"]
    for seconds, result in pictures:
        assert seconds < 10.0
        if result.is_error:
            assert "The calendar picture was stopped" in text_of(result)
        else:
            shown = data_of(result)
            assert len(shown["months"]) == 36
            assert any(isinstance(c, ImageContent) for c in result.content)
    assert sum(not r.is_error for _, r in pictures) >= 1


async def test_server_log_lines_reach_only_their_own_user(per_user: str) -> None:
    """MCP logging with per-user keys: the lines logged while serving one user go to
    that user's sessions only (here the API client's debug line for each request)."""
    import warnings

    from mcp.shared.exceptions import MCPDeprecationWarning
    from mcp.types import LoggingMessageNotificationParams

    seen: dict[str, list[str]] = {"a": [], "b": []}
    a_saw_trades = anyio.Event()

    def collect(who: str) -> LoggingFnT:
        async def on_log(params: LoggingMessageNotificationParams) -> None:
            seen[who].append(str(params.data))
            if who == "a" and "/trades" in str(params.data):
                a_saw_trades.set()

        return on_log

    async with (
        Client(_http(per_user, DEMO_KEY), mode="legacy", logging_callback=collect("a")) as a,
        Client(_http(per_user, SECOND_PRO_KEY), mode="legacy", logging_callback=collect("b")) as b,
    ):
        with warnings.catch_warnings():  # deprecated at 2026-07-28; the 2025 eras use it
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await a.set_logging_level("debug")
            await b.set_logging_level("debug")
        await a.call_tool("find_trades", {"limit": 2})
        with anyio.fail_after(20):
            await a_saw_trades.wait()
        await b.list_tools()  # anything queued for b would have gone out by now
    assert any("GET /trades" in line for line in seen["a"]), seen["a"]
    assert not any("/trades" in line for line in seen["b"]), seen["b"]
    for line in seen["a"] + seen["b"]:
        assert DEMO_KEY not in line
        assert SECOND_PRO_KEY not in line
