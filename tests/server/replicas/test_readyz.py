"""`/readyz` over real HTTP, with a real PostgreSQL store and Redis: 200 while both
answer; 503 naming what is down (its URL without the password, and why) when one does
not, and 200 again once it is back. `/healthz` says the process is alive throughout."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import build_http_app, build_server
from tradavity_mcp.settings import Settings

from ...kit import SANDBOX_URL, TLS


class Relay:
    """A TCP relay to a local service on a port of its own: `stop` takes the service
    away from whoever connects through it, `start` brings it back on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _through(url: str, port: int, password: str) -> str:
    """`url` with its host and port replaced by the relay's, and a password added."""
    parts = urlsplit(url)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@127.0.0.1:{port}"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(tmp_path: Path, environ: dict[str, str]) -> Iterator[str]:
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY, **environ},
        base_url=SANDBOX_URL,
        state_dir=tmp_path,
    )
    sandbox = create_app(SandboxConfig(db=":memory:"))
    server = build_server(settings, transport=SandboxTransport(sandbox), stdio=False)
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        yield base


def _get(base: str, path: str) -> tuple[int, Any]:
    response = httpx2.get(f"{base}{path}", timeout=10, verify=TLS)
    return response.status_code, response.json()


def test_ready_when_the_store_and_redis_answer(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    environ = {"TRADAVITY_STORE_URL": postgres_url, "TRADAVITY_REDIS_URL": redis_url}
    with _server(tmp_path, environ) as base:
        status, body = _get(base, "/readyz")
        assert status == 200
        assert body["ready"] is True
        assert body["checks"] == {"store": "ok", "redis": "ok"}
    with _server(tmp_path / "plain", {}) as base:  # nothing shared: nothing to wait for
        assert _get(base, "/readyz") == (200, {"ready": True, "checks": {}})


def test_not_ready_names_what_is_down_and_logs_why_without_the_password(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(urlsplit(postgres_url).port or 5432)
    relay.start()
    store = _through(postgres_url, relay.port, "pg-hunter2")
    redis = f"redis://:redis-hunter2@127.0.0.1:{_closed_port()}/0"
    environ = {"TRADAVITY_STORE_URL": store, "TRADAVITY_REDIS_URL": redis}
    caplog.set_level(logging.WARNING, logger="tradavity_mcp.ready")
    try:
        with _server(tmp_path, environ) as base:
            status, body = _get(base, "/readyz")
            assert (status, body) == (
                503,
                {"ready": False, "down": ["redis"], "checks": {"store": "ok", "redis": "down"}},
            )
            assert _get(base, "/readyz")[0] == 503  # still down: not logged again

            relay.stop()
            status, body = _get(base, "/readyz")
            assert status == 503
            assert body["down"] == ["redis", "store"]
            assert _get(base, "/healthz")[0] == 200  # alive all the same

            relay.start()
            status, body = _get(base, "/readyz")
            assert body["down"] == ["redis"]

            # The public body names what is down, never where it lives or why.
            assert "127.0.0.1" not in str(body)
            lines = [r.getMessage() for r in caplog.records if r.name == "tradavity_mcp.ready"]
            assert len(lines) == 3, lines  # redis down, store down, store back
            assert lines[0].startswith("not ready: redis " + redis.replace("redis-hunter2", "***"))
            assert "Connection" in lines[0]
            assert lines[1].startswith("not ready: store " + store.replace("pg-hunter2", "***"))
            assert lines[2] == "ready again: store answers"
            assert "hunter2" not in " ".join(lines)
    finally:
        relay.stop()
