"""Serving over real HTTP: a bound listening socket, and the sandbox (or any ASGI app) on
loopback in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

__all__ = ["bracketed", "listening_socket", "serve_in_thread"]


#: Connections the kernel queues before the server accepts them (uvicorn's default).
BACKLOG = 2048


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


def bracketed(host: str) -> str:
    """The host as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    path: str = "/api/v1",
    lifespan: bool = False,
) -> Iterator[str]:
    """Run `app` with uvicorn until the block ends; yields its base URL (+ `path`).

    The sandbox needs no lifespan; pass `lifespan=True, path=""` to serve an MCP app.
    """
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="on" if lifespan else "off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}{path}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
