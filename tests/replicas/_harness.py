"""Three (or N) `tradavity-mcp` replicas as real processes, and what the scenarios need
around them.

* `Postgres`, `RedisServer`: a PostgreSQL and a Redis of the harness's own (started with
  the helpers in `tests/services.py`), which a scenario may stop and start again on the
  same port.
* `SandboxProcess`: the sandbox in a process of its own (`tests/replicas/_sandbox.py`),
  over real HTTP, with its faults, request log and keys steered through `/_harness/`.
* `Replicas`: N server processes in hosted mode (streamable HTTP, `--auth per-user`,
  `--store postgresql://…`, `--redis redis://…`, one `TRADAVITY_MCP_SECRET_KEY`), each
  with a state directory of its own: only the store and Redis join them.
* `Balancer`: the load balancer, as an HTTP transport under the SDK's streamable HTTP
  client. It picks a replica for every request (round robin, no affinity), or always the
  same one (`pin`), and records which replica served what.
* `Replicas.client(key)`: a 2026-07-28 MCP client (sessionless: every request stands
  alone) whose requests the balancer spreads.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.api.idempotency import principal_for_key

from ..kit import TLS
from ..services import PostgresServer, RedisServer, _free_port

#: The protocol era that needs no affinity (the SDK's `mode`).
ERA = "2026-07-28"
#: The shared secret every replica gets (request-state keys, OAuth key encryption).
SECRET_KEY = "replicas-" + "5e" * 24
#: The URL the MCP client believes it talks to; the balancer sends each request on.
FRONT = "http://replicas.invalid/mcp"
#: Environment variables of ours that must not leak from the test run into a replica.
_OURS = ("TRADAVITY_",)


class Postgres(PostgresServer):
    """The harness's own PostgreSQL, which a scenario may stop and start again."""

    def __init__(self) -> None:
        super().__init__(max_connections=100)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without our variables, and `extra`: what a process started here
    gets."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**base, **extra}


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Until `url` answers 200 (the process `proc` logging to `log` is up). A start takes
    a second or two; with both cores busy one took over 30 s. An exit fails at once
    (below); only a hang waits this long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited ({proc.returncode}); see {log}:\n{_tail(log)}")
        try:
            if httpx2.get(url, timeout=1, verify=TLS).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.03)
    proc.kill()
    raise RuntimeError(f"{url} did not answer in {timeout} s; see {log}:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text("utf-8", errors="replace").splitlines()[-15:])
    except OSError:
        return ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


@dataclass(frozen=True)
class Sent:
    """One request the sandbox received, as its log has it."""

    method: str
    path: str
    status: int
    idempotency_key: str | None
    replayed: bool
    #: The key's principal (`principal_for_key`), None without a key.
    principal: str | None
    #: When it was answered (the sandbox process's monotonic clock).
    t: float

    @property
    def write(self) -> bool:
        return self.method != "GET"

    @property
    def committed(self) -> bool:
        """A write the sandbox carried out now (not a replay of an earlier one)."""
        return self.write and 200 <= self.status < 300 and not self.replayed


class SandboxProcess:
    """`python -m tests.replicas._sandbox` on a free port."""

    def __init__(self, home: Path, *, rate_multiplier: int = 1) -> None:
        self.port = _free_port()
        self.log = home / "sandbox.log"
        with self.log.open("ab") as errlog:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.replicas._sandbox", "--port", str(self.port),
                 "--rate-multiplier", str(rate_multiplier)],
                env=clean_env({}), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=errlog,
            )  # fmt: skip
        self.root = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.root}/api/v1"

    def wait_ready(self) -> None:
        wait_http(f"{self.root}/", self.proc, self.log)

    def _control(self, method: str, name: str, **kwargs: Any) -> Any:
        response = httpx2.request(
            method, f"{self.root}/_harness/{name}", timeout=10, **kwargs, verify=TLS
        )
        response.raise_for_status()
        return response.json()

    def set_faults(self, spec: str | None) -> None:
        self._control("POST", "faults", json={"spec": spec})

    def hold_answers(self, ms: float) -> None:
        """Carry out each write at once and hold its answer back `ms` (0: no more)."""
        self._control("POST", "hold", json={"ms": ms})

    def new_key(self) -> str:
        return str(self._control("POST", "keys")["key"])

    def log_since(self, since: int = 0) -> tuple[list[Sent], int]:
        """The requests from log entry `since` on, and the index after them."""
        data = self._control("GET", "log", params={"since": since})
        return [Sent(**r) for r in data["records"]], int(data["next"])

    def api_client(self, key: str) -> TradavityClient:
        """A checking client, straight to the sandbox (not through any replica)."""
        return TradavityClient(key, base_url=self.api)

    def close(self) -> None:
        _kill(self.proc)


@dataclass
class Replica:
    index: int
    port: int
    state: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Replicas:
    """N replicas on one store and one Redis, against one sandbox."""

    def __init__(
        self, home: Path, sandbox: SandboxProcess, store_url: str, redis_url: str, n: int = 3
    ) -> None:
        self.home = home
        self.sandbox = sandbox
        self.store_url = store_url
        self.redis_url = redis_url
        self.replicas = [
            Replica(i, _free_port(), home / f"replica-{i}", home / f"replica-{i}.log")
            for i in range(n)
        ]

    def __len__(self) -> int:
        return len(self.replicas)

    def _argv(self, replica: Replica) -> list[str]:
        return [
            sys.executable, "-m", "tradavity_mcp", "--transport", "http",
            "--host", "127.0.0.1", "--port", str(replica.port), "--auth", "per-user",
            "--base-url", self.sandbox.api, "--store", self.store_url,
            "--redis", self.redis_url, "--log-level", "INFO",
        ]  # fmt: skip

    def _launch(self, replica: Replica) -> None:
        replica.state.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            {"TRADAVITY_MCP_SECRET_KEY": SECRET_KEY, "TRADAVITY_STATE_DIR": str(replica.state)}
        )
        with replica.log.open("ab") as errlog:
            replica.proc = subprocess.Popen(
                self._argv(replica),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errlog,
            )

    def _ready(self, replica: Replica) -> None:
        assert replica.proc is not None
        wait_http(f"{replica.url}/healthz", replica.proc, replica.log)

    def start(self) -> None:
        """Every replica at once (their start-ups and migrations overlap), then each ready."""
        for replica in self.replicas:
            self._launch(replica)
        for replica in self.replicas:
            self._ready(replica)

    def kill(self, index: int) -> None:
        """SIGKILL: no goodbye, no lease given back."""
        proc = self.replicas[index].proc
        assert proc is not None
        _kill(proc)

    def restart(self, index: int) -> None:
        replica = self.replicas[index]
        if replica.proc is not None:
            _kill(replica.proc)
        self._launch(replica)
        self._ready(replica)

    def close(self) -> None:
        for replica in self.replicas:
            if replica.proc is not None:
                _kill(replica.proc)

    def logs(self) -> str:
        return "\n".join(r.log.read_text("utf-8", errors="replace") for r in self.replicas)

    @contextlib.asynccontextmanager
    async def client(
        self, key: str, *, pin: int | None = None, http_timeout: float = 60
    ) -> AsyncIterator[tuple[Client, Balancer]]:
        """A 2026-07-28 client with bearer `key` behind a balancer: requests spread over
        every replica, or all to replica `pin`."""
        balancer = Balancer(self, pin)
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {key}"},
                transport=balancer,
                timeout=http_timeout,
                verify=TLS,
            ) as http,
            Client(streamable_http_client(FRONT, http_client=http), mode=ERA) as client,
        ):
            assert client.protocol_version == ERA
            yield client, balancer

    # --- the store, read directly -----------------------------------------------------

    def ledger_keys(self, key: str) -> set[str]:
        """Every idempotency key the ledger recorded for `key`'s principal."""
        with psycopg.connect(self.store_url) as db:
            rows = db.execute(
                "SELECT idem_key FROM steps WHERE principal = %s", (principal_for_key(key),)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def pending_calls(self, key: str) -> list[tuple[str, str, str | None, float | None]]:
        """(tool, call id, lease owner, lease end) of `key`'s unfinished calls."""
        with psycopg.connect(self.store_url) as db:
            rows = db.execute(
                "SELECT tool, call_id, owner, lease_until FROM calls "
                "WHERE principal = %s AND state = 'pending'",
                (principal_for_key(key),),
            ).fetchall()
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]


class Balancer(httpx2.AsyncBaseTransport):
    """A load balancer without affinity, as an HTTP transport: each request goes to the
    next replica in turn (or always to `pin`), whatever went before."""

    def __init__(self, replicas: Replicas, pin: int | None = None) -> None:
        self.replicas = replicas
        self.pin = pin
        self._turn = itertools.count()
        self._inner = httpx2.AsyncHTTPTransport(verify=TLS)
        #: (replica index, JSON-RPC method) of every request sent.
        self.served: list[tuple[int, str]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self.pin if self.pin is not None else next(self._turn) % len(self.replicas)
        replica = self.replicas.replicas[index]
        request.url = request.url.copy_with(host="127.0.0.1", port=replica.port)
        request.headers["Host"] = f"127.0.0.1:{replica.port}"
        self.served.append((index, _method_of(request)))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _method_of(request: httpx2.Request) -> str:
    try:
        body = json.loads(request.content or b"{}")
    except (ValueError, httpx2.RequestNotRead):
        return "?"
    return str(body.get("method", "?")) if isinstance(body, dict) else "batch"


@dataclass
class Setup:
    """Everything a module of scenarios shares; `close()` stops it all."""

    home: Path
    postgres: Postgres
    redis: RedisServer
    sandbox: SandboxProcess
    replicas: Replicas
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def three_replicas(*, n: int = 3, rate_multiplier: int = 1) -> Iterator[Setup]:
    """A PostgreSQL and a Redis of the harness's own, the sandbox process and `n`
    replicas, started together (the slow parts overlap) and stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="tradavity-replicas-"))
    closers: list[Callable[[], None]] = []
    try:
        sandbox = SandboxProcess(home, rate_multiplier=rate_multiplier)
        closers.append(sandbox.close)
        redis = RedisServer()
        closers.append(redis.close)
        redis.start()
        postgres = Postgres()
        closers.append(postgres.close)
        postgres.start()
        store = postgres.database("ledger")
        sandbox.wait_ready()
        replicas = Replicas(home, sandbox, store, redis.url, n)
        closers.append(replicas.close)
        replicas.start()
        setup = Setup(home, postgres, redis, sandbox, replicas, closers)
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        shutil.rmtree(home, ignore_errors=True)
        raise
    try:
        yield setup
    finally:
        setup.close()
