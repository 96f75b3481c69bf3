"""Whose address the per-client limits see, with the server started as a user starts it
(`tradavity-mcp --transport http --auth per-user`, a real process) and the sandbox behind
it over real HTTP: behind a balancer named by `--trusted-proxy`, each client's own (from
`X-Forwarded-For`), so one client's junk keys spend its own budget only; without the flag,
the peer's, whatever a forwarded header claims (loopback is not trusted either)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from tradavity_mcp.sandbox import SECOND_PRO_KEY, SandboxConfig, create_app, serve_in_thread

from ..kit import TLS, junk_key, me_checks
from ..replicas._harness import _kill, clean_env, wait_http
from ..server.oauth.kit import INITIALIZE, MCP_POST, free_port

pytestmark = pytest.mark.anyio

#: Two clients behind one balancer (documentation addresses, RFC 5737).
ALICE = "203.0.113.7"
BOB = "198.51.100.9"


@contextmanager
def _server(tmp_path: Path, api: str, *flags: str) -> Iterator[str]:
    """`tradavity-mcp` serving per-user HTTP on loopback against `api`; its base URL."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("ab") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradavity_mcp", "--transport", "http", "--auth", "per-user",
             "--port", str(port), "--base-url", api, "--state-dir", str(tmp_path / "state"),
             "--log-level", "INFO", *flags],
            env=clean_env({}), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc, log)
        yield base
    finally:
        _kill(proc)


async def _initialize(http: httpx2.AsyncClient, base: str, key: str, address: str) -> int:
    """The status of an `initialize` with this bearer, sent by the balancer on behalf of
    `address` (200: let in)."""
    resp = await http.post(
        f"{base}/mcp",
        json=INITIALIZE,
        headers={**MCP_POST, "Authorization": f"Bearer {key}", "X-Forwarded-For": address},
    )
    return resp.status_code


async def _junk_from(http: httpx2.AsyncClient, base: str, address: str, count: int) -> list[int]:
    """`count` junk keys at once from `address`: their statuses."""
    statuses: list[int] = []

    async def one() -> None:
        statuses.append(await _initialize(http, base, junk_key(), address))

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return statuses


async def _budgets(tmp_path: Path, *flags: str) -> tuple[int, int, int]:
    """Alice sends 30 junk keys, then Bob 20, then Bob his real key (never seen before):
    the `/me` checks the API saw for each batch, and the status of Bob's real key."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    real = sandbox.state.sandbox.issue_key(SECOND_PRO_KEY, name="Bob's")
    with serve_in_thread(sandbox) as api, _server(tmp_path, api, *flags) as base:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            assert await _junk_from(http, base, ALICE, 30) == [401] * 30
            alice = me_checks(sandbox, 401)
            assert await _junk_from(http, base, BOB, 20) == [401] * 20
            bob = me_checks(sandbox, 401) - alice
            status = await _initialize(http, base, real, BOB)
    assert me_checks(sandbox, 429) == 0
    return alice, bob, status


async def test_behind_a_trusted_balancer_each_client_spends_its_own_budget(
    tmp_path: Path,
) -> None:
    alice, bob, real = await _budgets(tmp_path, "--trusted-proxy", "127.0.0.1")
    print(f"trusted balancer: /me checks for Alice's 30 junk keys {alice}, Bob's 20 {bob}")
    assert 20 <= alice <= 23  # Alice's budget: 20 at once, a refill or two while they ran
    assert bob == 20  # Bob's own budget, untouched by Alice's junk
    assert real == 200


async def test_without_the_flag_a_forwarded_header_is_not_believed(tmp_path: Path) -> None:
    """The same requests from loopback, no `--trusted-proxy`: every one is the peer's
    (127.0.0.1), so Alice's junk spent the budget Bob's keys are charged to; Bob's real
    key is still let in, after waiting for a refill."""
    alice, bob, real = await _budgets(tmp_path)
    print(f"no trusted proxy: /me checks for Alice's 30 junk keys {alice}, Bob's 20 {bob}")
    assert 20 <= alice <= 23
    assert bob <= 5  # the shared budget was spent: a refill or two, not Bob's own 20
    assert real == 200
