"""Real PostgreSQL and Redis servers for the tests (a pytest plugin, loaded by the root
conftest): each started once per session (per xdist worker) on loopback, in a temporary
directory, and stopped at the end. Each test gets a database of its own.

PostgreSQL's binaries are found on PATH or under /usr/lib/postgresql/*/bin (Debian's
`postgresql` package), Redis's `redis-server` on PATH (Debian's `redis-server`); `./dev test`
installs both where missing. PostgreSQL refuses to run as root, so under root the server runs
as the `postgres` user (made if missing).
"""

from __future__ import annotations

import fcntl
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
import redis


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise RuntimeError(
        f"PostgreSQL's {name} is missing: install Debian's postgresql package "
        "(`./dev test` does it), the ledger's PostgreSQL tests need it"
    )


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """The command prefix that runs PostgreSQL as a user it accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run([_tool("useradd"), "--system", "--no-create-home", "postgres"], check=True)
    return [_tool("runuser"), "-u", "postgres", "--"]


def _template() -> Path:
    """A freshly initialised PostgreSQL data directory to copy (initdb takes a second or
    two; a copy, a few milliseconds): made once per machine and PostgreSQL version, under
    a lock, so parallel test workers and drills share it."""
    initdb = _bin("initdb")
    version = subprocess.run(
        [initdb, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    root = Path(tempfile.gettempdir()) / f"tradavity-pg-template-{os.geteuid()}-{version}"
    ready = root / "data" / "PG_VERSION"
    if ready.exists():
        return root / "data"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            prefix = _run_as()
            work = Path(tempfile.mkdtemp(prefix="initdb-", dir=root))
            if prefix:
                entry = pwd.getpwnam("postgres")
                os.chown(work, entry.pw_uid, entry.pw_gid)
            subprocess.run(
                [*prefix, initdb, "-D", str(work / "data"), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True,
            )  # fmt: skip
            (work / "data").rename(root / "data")  # whole, or not there at all
            shutil.rmtree(work, ignore_errors=True)
    return root / "data"


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 in a temporary directory of its own (a copy of the
    template cluster): `start()`, `stop()` (unreachable, as a failed database host is;
    `start()` brings it back on its port), `restart()`, `close()`."""

    def __init__(self, *, max_connections: int = 200) -> None:
        self.prefix = _run_as()
        self.home = Path(tempfile.mkdtemp(prefix="tradavity-pg-"))
        self.data = self.home / "data"
        shutil.copytree(_template(), self.data, symlinks=True)
        if self.prefix:
            entry = pwd.getpwnam("postgres")
            for path in [self.home, *self.home.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self.home.chmod(0o700)
        self.data.chmod(0o700)
        self.port = _free_port()
        self.max_connections = max_connections
        self.running = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """A new, empty database; its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rpartition("/")[0] + "/" + name

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off"
        options += f" -c max_connections={self.max_connections}"
        subprocess.run(
            [*self.prefix, _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.home / "log"),
             "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.running = True

    def restart(self) -> None:
        """Restarted as an operator restarts it (`-m fast`): every session ends, its
        session locks with it; what was committed stays."""
        subprocess.run(
            [*self.prefix, _bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=True,
        )
        self.running = False
        self.start()

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        self.running = False

    def close(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1; yields the URL of its `postgres` database."""
    server = PostgresServer()
    server.start()
    try:
        yield server.admin_url
    finally:
        server.close()


_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"ledger_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.rpartition("/")[0] + "/" + name
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def lock_waiters(admin: psycopg.Connection[Any], application: str, locktype: str = "") -> int:
    """How many of `application`'s sessions on this server wait for a lock (of `locktype`
    only, when given)."""
    row = admin.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE NOT l.granted AND a.application_name = %s AND (%s = '' OR l.locktype = %s)",
        (application, locktype, locktype),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def until_waiting(
    admin: psycopg.Connection[Any], application: str, locktype: str = ""
) -> None:
    """Until one of `application`'s sessions waits for a lock (PostgreSQL sets no event)."""
    with anyio.fail_after(60):  # a guard against hanging, not the measure
        while lock_waiters(admin, application, locktype) == 0:  # noqa: ASYNC110
            await anyio.sleep(0.02)


class RedisServer:
    """A Redis server on 127.0.0.1 in a temporary directory of its own: `start()`,
    `stop()` (SIGKILL, as a crashed cache; `start()` brings it back on its port, empty,
    or with its data when `persistent`: every write in an append-only file), `close()`.
    `url` names database 0."""

    def __init__(self, *, persistent: bool = False, databases: int = 16) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(self.binary):
            raise RuntimeError(
                "redis-server is missing: install Debian's redis-server package "
                "(`./dev test` does it), the replicas' tests need it"
            )
        self.home = Path(tempfile.mkdtemp(prefix="tradavity-redis-"))
        self.port = _free_port()
        self.base_url = f"redis://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/0"
        self.persistent = persistent
        self.databases = databases
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.home), "--save", "",
             *(persistence if self.persistent else ["--appendonly", "no"]),
             "--databases", str(self.databases), "--logfile", str(self.home / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_redis(self.url)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis server on 127.0.0.1 (no persistence); yields its URL without a database."""
    server = RedisServer(databases=64)
    server.start()
    try:
        yield server.base_url
    finally:
        server.close()


def wait_for_redis(url: str, timeout: float = 20.0) -> None:
    """Block until the Redis server at `url` answers PING."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with redis.Redis.from_url(url, socket_timeout=1) as client:
                client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_redis_dbs = itertools.count(1)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A fresh, empty Redis database on the session's server, flushed after the test."""
    url = f"{redis_server}/{next(_redis_dbs) % 64}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url
    with redis.Redis.from_url(url) as client:
        client.flushdb()
