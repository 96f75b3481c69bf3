"""`tradavity-mcp sandbox` as a user runs it: a real process on loopback."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tradavity_mcp.sandbox import DEMO_KEY, _cli

from ..kit import TLS

LAUNCH = (
    "import argparse, sys\n"
    "from tradavity_mcp.sandbox import _cli\n"
    "p = argparse.ArgumentParser(); _cli.add_arguments(p)\n"
    "sys.exit(_cli.run(p.parse_args(sys.argv[1:])))\n"
)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def test_serves_prints_its_url_and_keeps_a_file_journal(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite3"
    numbers = []
    for run in range(2):  # the second run finds the first one's journal, not a new seed
        proc = _start("--port", "0", "--db", str(db))
        try:
            assert proc.stdout is not None
            first, second = proc.stdout.readline(), proc.stdout.readline()
            assert first.startswith("Tradavity sandbox on http://127.0.0.1:")
            assert second.strip() == f"demo key: {DEMO_KEY}"
            base = first.split(" on ", 1)[1].strip()
            headers = {"Authorization": f"Bearer {DEMO_KEY}"}
            me = httpx2.get(base + "/me", headers=headers, timeout=10, verify=TLS)
            assert me.json()["data"]["user"]["name"] == "Dana Demo"
            if run == 0:
                made = httpx2.post(
                    base + "/tag-categories",
                    json={"name": "From the CLI"},
                    headers={**headers, "Idempotency-Key": "cli-1"},
                    timeout=10,
                    verify=TLS,
                )
                assert made.status_code == 201
            cats = httpx2.get(base + "/tag-categories", headers=headers, timeout=10, verify=TLS)
            numbers.append(
                sum(c["name"] == "From the CLI" for c in cats.json()["data"]["categories"])
            )
        finally:
            _stop(proc)
    assert numbers == [1, 1]


def test_bad_fault_spec_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    _cli.add_arguments(parser)
    assert _cli.run(parser.parse_args(["--faults", "meteor=1", "--db", ":memory:"])) == 2
    assert "unknown fault" in capsys.readouterr().err


def test_default_db_is_in_the_user_data_directory() -> None:
    path = Path(_cli.default_db())
    assert path.name == "sandbox.sqlite3"
    assert path.parent.name == "tradavity-mcp"


def test_the_printed_address_takes_connections_before_the_server_accepts_them() -> None:
    """The address is printed as soon as the socket is made: it must already listen, so a
    client that connects at once waits in the backlog instead of being refused."""
    from tradavity_mcp.sandbox._serve import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass  # nothing has accepted yet: the kernel queued the connection
    finally:
        sock.close()
