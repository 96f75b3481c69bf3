"""Slow clients, over real sockets on 127.0.0.1 against uvicorn as every server here runs
it (`serve_in_thread`, short deadlines): headers or a body that trickle in are cut with a
408, streams are not, and a connection over the cap makes room."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.sandbox._connections import ConnectionLimits
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.server.app import StreamOptions
from tradavity_mcp.settings import Settings

from ..kit import TLS
from ._slow import (
    HEALTHZ,
    is_closed,
    port_of,
    post_head,
    receive_until_closed,
    response,
    trickle,
    trickle_on,
)

pytestmark = pytest.mark.anyio

RELEASE = threading.Event()


async def _echo(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)} bytes")


async def _hold(request: Request) -> Response:
    while not RELEASE.is_set():  # noqa: ASYNC110 (set from the test's thread)
        await anyio.sleep(0.02)
    return PlainTextResponse("released")


async def _late(request: Request) -> Response:
    await anyio.sleep(3.0)  # a slow check before the body is read
    body = await request.body()
    return PlainTextResponse(f"got {len(body)} bytes")


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


APP = Starlette(
    routes=[
        Route("/healthz", _ok),
        Route("/echo", _echo, methods=["POST"]),
        Route("/hold", _hold),
        Route("/late", _late, methods=["POST"]),
    ]
)


def test_headers_that_trickle_in_get_a_408_and_the_connection_closes() -> None:
    with serve_in_thread(APP, path="", limits=ConnectionLimits(header_timeout=1.0)) as base:
        port = port_of(base)
        elapsed, reply = trickle(port, HEALTHZ[:-2], every=0.2)
        assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"The request line and headers took longer than 1 s to arrive" in reply
        assert 0.9 < elapsed < 10  # at its deadline, though a byte came every 0.2 s
        # A connection that sends nothing is closed too, without an answer.
        elapsed, reply = trickle(port, b"", every=0.2)
        assert reply == b""
        assert elapsed < 10
        # On a kept-alive connection, the next request's headers have the same deadline.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(HEALTHZ)
            first = response(sock)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b"ok")
            elapsed, reply = trickle_on(sock, HEALTHZ[:-2], every=0.2, within=60)
            assert reply.startswith(b"HTTP/1.1 408 ")
            assert elapsed < 10
        # A client that sends its request at once is not disturbed.
        assert httpx2.get(f"{base}/healthz", verify=TLS).text == "ok"


def test_a_body_that_trickles_in_is_cut_and_a_steady_upload_is_not() -> None:
    with serve_in_thread(APP, path="", limits=ConnectionLimits(body_timeout=1.0)) as base:
        port = port_of(base)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head(1000))
            elapsed, reply = trickle_on(sock, b"x" * 1000, every=0.2, within=60)
        assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"The request body arrived too slowly: it has 1 s, and 1 s more for every" in reply
        assert 0.9 < elapsed < 10
        # 64 KiB over 2 s, past the 1 s deadline: each KiB received buys a second more.
        chunk = b"y" * 8192
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head(8 * len(chunk)))
            for _ in range(8):
                sock.sendall(chunk)
                time.sleep(0.25)
            reply = response(sock)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert reply.endswith(b"got 65536 bytes")


def test_time_the_app_spends_not_reading_is_not_held_against_the_client() -> None:
    """The app reads the body 3 s in, past the 2 s deadline; from then on, the client has
    its 2 s again."""
    with serve_in_thread(APP, path="", limits=ConnectionLimits(body_timeout=2.0)) as base:
        port = port_of(base)
        # 1 MiB sent at once: reading pauses once 64 KiB wait, until the app reads.
        big = b"z" * (1 << 20)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head(len(big), "/late") + big)
            assert response(sock).endswith(b"got 1048576 bytes")
        # A client that waits to be asked for its body (Expect: 100-continue).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = post_head(10, "/late").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
            sock.sendall(head)
            assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")  # after 3 s
            sock.sendall(b"0123456789")
            assert response(sock).endswith(b"got 10 bytes")


def _mcp_app(tmp_path: Path) -> Starlette:
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY},
        base_url="http://sandbox.local/api/v1",
        state_dir=tmp_path / "state",
    )
    sandbox = SandboxTransport(create_app(SandboxConfig(db=":memory:")))
    hosted = HostedOptions(stream=StreamOptions(heartbeat_seconds=0.2, poll_seconds=0.1))
    server = build_server(settings, transport=sandbox, stdio=False, hosted=hosted)
    return build_http_app(server, kind="http", host="127.0.0.1")


async def test_streams_run_on_past_both_deadlines(tmp_path: Path) -> None:
    """`/sync/stream` and the MCP GET stream, held for six times the deadlines."""
    short = ConnectionLimits(header_timeout=0.5, body_timeout=0.5)
    with serve_in_thread(_mcp_app(tmp_path), path="", lifespan=True, limits=short) as base:
        async with httpx2.AsyncClient(timeout=10, verify=TLS) as http:
            lines: list[tuple[float, str]] = []
            async with http.stream("GET", f"{base}/sync/stream?replay=0") as sync:
                assert sync.status_code == 200
                opened = time.monotonic()
                with anyio.move_on_after(3) as held:
                    async for line in sync.aiter_lines():
                        if line:
                            lines.append((time.monotonic() - opened, line))
            assert held.cancelled_caught  # still open when we let go
            assert lines[0][1] == ": connected"
            beats = [at for at, line in lines if line == ": heartbeat"]
            assert len(beats) >= 3
            assert beats[-1] > 2.0  # still coming, four times the deadlines in

            accept = {"Accept": "application/json, text/event-stream"}
            init = await http.post(
                f"{base}/mcp",
                headers=accept,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "slow-clients", "version": "1"},
                    },
                },
            )
            assert init.status_code == 200
            session = {
                "mcp-session-id": init.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            done = await http.post(
                f"{base}/mcp",
                headers={**accept, **session},
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            )
            assert done.status_code == 202
            get = {"Accept": "text/event-stream", **session}
            async with http.stream("GET", f"{base}/mcp", headers=get) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                with anyio.move_on_after(3) as held:
                    async for _ in stream.aiter_raw():
                        pass
            assert held.cancelled_caught  # the server never ended it


def test_at_the_cap_the_longest_waiting_connection_makes_room() -> None:
    RELEASE.clear()
    with serve_in_thread(APP, path="", limits=ConnectionLimits(max_connections=4)) as base:
        port = port_of(base)
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        try:
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and no more
                time.sleep(0.05)  # in this order
            # A fifth client gets in: the oldest slow one is closed, with a word why.
            assert httpx2.get(f"{base}/healthz", verify=TLS).text == "ok"
            evicted = receive_until_closed(slow[0])
            assert evicted.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b"at its limit of 4 open connections" in evicted
            assert not any(is_closed(sock) for sock in slow[2:])
        finally:
            for sock in slow:
                sock.close()
        # Four requests in progress: none waits, so a fifth connection is refused.
        busy = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        try:
            for sock in busy:
                sock.sendall(b"GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.5)  # the closed ones above are gone; these four are in
            refused = httpx2.get(f"{base}/healthz", verify=TLS)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert "at its limit of 4 open connections" in refused.text
            RELEASE.set()
            for sock in busy:
                assert response(sock).endswith(b"released")
        finally:
            RELEASE.set()
            for sock in busy:
                sock.close()


# --- the server's own process -------------------------------------------------------
