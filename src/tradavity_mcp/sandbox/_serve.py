"""Serving over real HTTP: a bound listening socket, and the sandbox (or any ASGI app) on
loopback in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from ._connections import BACKLOG, ConnectionLimits, accept_batch, open_files_limit

__all__ = ["bracketed", "listening_socket", "serve_in_thread", "uvicorn_config"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (IPv6 when the host has a colon; port 0 picks a
    free one) and listening, for uvicorn to serve on: a client that connects as soon as
    the address is printed waits in the backlog rather than being refused. Raises OSError,
    with nothing left open, when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(
    app: ASGIApp,
    limits: ConnectionLimits | None = None,
    *,
    log_level: str,
    lifespan: Literal["on", "off"],
    access_log: bool = True,
    trusted_proxies: list[str] | None = None,
) -> uvicorn.Config:
    """uvicorn as every server here runs: HTTP/1.1 under `limits` (slow clients timed
    out, open connections capped: `_connections`), no WebSocket (nothing here speaks it,
    and an upgraded connection would leave the count), and its logs through the root
    logger, to the one stderr handler the command line set up.

    X-Forwarded-For names the client only when `trusted_proxies` sent it: by default the
    peer is the client (uvicorn would otherwise trust any loopback peer)."""
    open_files = open_files_limit()
    return uvicorn.Config(
        app,
        http=(limits or ConnectionLimits()).protocol(open_files),
        ws="none",
        backlog=accept_batch(open_files),
        log_config=None,
        log_level=log_level,
        lifespan=lifespan,
        access_log=access_log,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
    )


def bracketed(host: str) -> str:
    """The host as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """uvicorn's server, told to stop by `stop()` at once rather than on its next 0.1 s
    tick (every test and the demo start and stop one). `ready` is set when its start-up
    is over (`started` says whether it succeeded); `closed` once it no longer accepts
    connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self.ready = threading.Event()
        self.closed = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            for listening in self.servers:
                listening.close()  # as uvicorn's own shutdown begins; closing twice is fine
        finally:
            self.closed.set()
        await super().shutdown(sockets)

    def run_until_stopped(self, sock: socket.socket) -> None:
        """The thread's target: serve on `sock` until `stop()`."""
        try:
            self.run(sockets=[sock])
        finally:  # also when it failed before or during its start-up
            self.ready.set()
            self.closed.set()

    def stop(self) -> None:
        self.should_exit = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    path: str = "/api/v1",
    lifespan: bool = False,
    limits: ConnectionLimits | None = None,
) -> Iterator[str]:
    """Run `app` with uvicorn until the block ends; yields its base URL (+ `path`).

    The sandbox needs no lifespan; pass `lifespan=True, path=""` to serve an MCP app. An
    app with a lifespan has finished shutting down when the block ends; one without has
    stopped accepting connections, and uvicorn lets the open ones go (0.1 s or more) in
    the background. `limits`: how slow a client may be, how many may connect (default:
    `ConnectionLimits()`).
    """
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn_config(
        app,
        limits,
        log_level="critical",
        lifespan="on" if lifespan else "off",
        access_log=False,
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run_until_stopped, args=(sock,), daemon=True)
    thread.start()
    if not server.ready.wait(timeout=10) or not server.started:
        server.stop()
        raise RuntimeError("the sandbox did not start")
    try:
        yield f"http://{host}:{bound_port}{path}"
    finally:
        server.stop()
        if lifespan or not server.closed.wait(timeout=10):
            thread.join(timeout=10)
            sock.close()
