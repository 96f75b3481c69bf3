"""Slow clients against the server's own process (`tradavity-mcp --sandbox --transport
http`), over real sockets: under a few hundred slow connections and a low open-files limit
`/healthz` still answers and stderr stays small; a low soft limit is raised; the deadline
flags apply; a bad value is one clear line."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx2
import pytest

from ._slow import HEALTHZ, is_closed, post_head, trickle, trickle_on


def _freeport_of() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(
    tmp_path: Path, *flags: str, open_files: tuple[int, int]
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`tradavity-mcp --sandbox --transport http` started under that open-files limit
    (soft, hard), until it answers `/healthz`; stopped with SIGTERM at the end. Yields
    the process, its port and the file its stderr goes to."""
    port = _freeport_of()
    err = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    env["TRADAVITY_STATE_DIR"] = str(tmp_path / "state")
    env["TRADAVITY_SANDBOX_DB"] = ":memory:"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tradavity_mcp", "--sandbox", "--transport", "http"),
                *("--port", str(port), *flags),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            preexec_fn=limit,  # noqa: PLW1509 (no threads to deadlock: only setrlimit)
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, err.read_text()
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        yield proc, port, err
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_under_300_slow_connections_and_256_open_files_healthz_answers(tmp_path: Path) -> None:
    """The issue's attack: 300 connections each sending a header byte now and then, at
    an open-files limit of 256 the server cannot raise. Before: `/healthz` stopped
    answering, and stderr took 30 MB of "Too many open files" in 15 s."""
    with _server(tmp_path, open_files=(256, 256)) as (_, port, err):
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(300)]
        try:
            for sock in slow:
                sock.sendall(b"G")
            answered = []
            for _ in range(6):
                for sock in slow:
                    with suppress(OSError):  # closed by the server
                        sock.send(b"E")
                started = time.monotonic()
                health = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                answered.append((health.status_code, time.monotonic() - started))
                time.sleep(0.5)
            assert [status for status, _ in answered] == [200] * 6
            assert max(seconds for _, seconds in answered) < 5
            closed = sum(is_closed(sock) for sock in slow)
            assert closed >= 100  # the cap (160 here) made room, oldest first
        finally:
            for sock in slow:
                sock.close()
    log = err.read_text()
    assert len(log.encode()) < 4_000, log
    assert "Too many open files" not in log
    assert "the open-files limit (256) leaves room for 160 connections" in log
    evicted = [line for line in log.splitlines() if "at the limit of 160" in line]
    assert evicted[0].endswith("closed the one that had waited longest for a request")
    # The evictions after the first are counted on one line (written at SIGTERM at the latest).
    assert "repeated " in evicted[1]


def test_the_open_files_limit_is_raised_and_the_deadline_flags_apply(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(256, hard // 2)
    flags = ("--header-timeout", "1", "--body-timeout", "1", "--log-level", "DEBUG")
    with _server(tmp_path, *flags, open_files=(soft, hard)) as (proc, port, err):
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == [str(hard), str(hard)]
        elapsed, reply = trickle(port, HEALTHZ[:-2], every=0.2)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert elapsed < 10
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head(100, "/mcp", f"127.0.0.1:{port}"))
            elapsed, reply = trickle_on(sock, b"{" * 100, every=0.2, within=60)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert elapsed < 10
    log = err.read_text()
    assert f"open-files limit raised from {soft} to {hard}" in log
    assert (
        "closed a connection from 127.0.0.1: its request headers were not all in after 1 s" in log
    )
    assert "closed a connection from 127.0.0.1: its request body came too slowly" in log


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--header-timeout", "0", "must be a number of seconds above 0; got 0"),
        ("--body-timeout", "soon", "not a number of seconds: 'soon'"),
        ("--max-connections", "0", "must be 1 or more; got 0"),
    ],
)
def test_a_bad_limit_is_one_clear_line(flag: str, value: str, said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tradavity_mcp", "--transport", "http", flag, value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(f"argument {flag}: {said}")
