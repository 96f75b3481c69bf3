"""Per-user key checks shared between replicas through a real Redis (`--redis`): a key
checked against `/me` on one server is not checked again on another while the answer
holds, a refused key is refused everywhere at once, and Redis holds no key."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from tradavity_mcp.sandbox import DEMO_KEY, REVOKED_KEY, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import HostedOptions, build_server
from tradavity_mcp.server.app import TradavityServer
from tradavity_mcp.server.auth import PerUserVerifier, Workspaces
from tradavity_mcp.settings import Settings

from ...kit import SANDBOX_URL

pytestmark = pytest.mark.anyio


def _replica(tmp_path: Path, name: str, app: Any, redis_url: str | None) -> TradavityServer:
    environ = {"TRADAVITY_REDIS_URL": redis_url} if redis_url is not None else {}
    settings = Settings.load(
        environ=environ, base_url=SANDBOX_URL, state_dir=tmp_path / name, require_key=False
    )
    return build_server(
        settings,
        transport=SandboxTransport(app),
        stdio=False,
        hosted=HostedOptions(auth="per-user"),
    )


def _me_requests(app: Any) -> int:
    return sum(1 for r in app.state.sandbox.request_log if r.path.endswith("/me"))


def _verifier(server: TradavityServer) -> PerUserVerifier:
    verifier = server.backend.verifier
    assert isinstance(verifier, PerUserVerifier)
    return verifier


def _registry(server: TradavityServer) -> Workspaces:
    state = server.backend.state
    assert state is not None
    assert state.registry is not None
    return state.registry


async def test_a_key_checked_on_one_replica_is_not_checked_on_another(
    tmp_path: Path, redis_url: str
) -> None:
    app = create_app(SandboxConfig(db=":memory:"))
    a, b = (_replica(tmp_path, name, app, redis_url) for name in ("a", "b"))
    async with a.backend.held(), b.backend.held():
        on_a = await _verifier(a).verify_token(DEMO_KEY)
        on_b = await _verifier(b).verify_token(DEMO_KEY)
        assert on_a is not None
        assert on_b is not None
        assert on_b.scopes == on_a.scopes
        assert on_b.subject == on_a.subject
        assert (_registry(a).checks_sent, _registry(b).checks_sent) == (1, 0)
        assert _me_requests(app) == 1
        # B serves the key's calls with a workspace of its own, scoped as A found.
        ws = _registry(b).get(DEMO_KEY)
        assert ws is not None
        assert ws.scopes == frozenset(on_a.scopes)

        # Refused on A: refused on B without asking Tradavity.
        assert await _verifier(a).verify_token(REVOKED_KEY) is None
        assert await _verifier(b).verify_token(REVOKED_KEY) is None
        assert (_registry(a).checks_sent, _registry(b).checks_sent) == (2, 0)
        assert _me_requests(app) == 2

    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        names = r.keys("tradavity-mcp:key:*")
        assert len(names) == 2
        held = " ".join(names + [str(r.get(n)) for n in names])
        for key in (DEMO_KEY, REVOKED_KEY):
            assert key not in held
            assert key[5:21] not in held
        # Each answer holds as long as it does on the replica that got it.
        ttls = sorted(r.pttl(n) for n in names)
        assert 55_000 < ttls[0] <= 60_000  # the refusal: a minute
        assert 295_000 < ttls[1] <= 300_000  # the accepted key: five minutes


async def test_a_shared_answer_is_trusted_only_as_long_as_it_holds(
    tmp_path: Path, redis_url: str
) -> None:
    """C admits a key whose shared answer is nearly spent; once it is, C asks `/me`."""
    app = create_app(SandboxConfig(db=":memory:"))
    a, c = (_replica(tmp_path, name, app, redis_url) for name in ("a", "c"))
    async with a.backend.held(), c.backend.held():
        assert await _verifier(a).verify_token(DEMO_KEY) is not None
        with redis.Redis.from_url(redis_url, decode_responses=True) as r:
            (name,) = r.keys("tradavity-mcp:key:accepted:*")
            r.pexpire(name, 300)
        assert await _verifier(c).verify_token(DEMO_KEY) is not None
        assert _me_requests(app) == 1
        await anyio.sleep(0.4)
        assert await _verifier(c).verify_token(DEMO_KEY) is not None
        assert _me_requests(app) == 2  # C's own re-check, shared again
        assert await _verifier(a).verify_token(DEMO_KEY) is not None
        assert _me_requests(app) == 2


async def test_without_redis_each_replica_checks_the_key_itself(tmp_path: Path) -> None:
    """The control."""
    app = create_app(SandboxConfig(db=":memory:"))
    a, b = (_replica(tmp_path, name, app, None) for name in ("a", "b"))
    async with a.backend.held(), b.backend.held():
        assert await _verifier(a).verify_token(DEMO_KEY) is not None
        assert await _verifier(b).verify_token(DEMO_KEY) is not None
    assert _me_requests(app) == 2


async def test_redis_away_the_replica_checks_keys_itself_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    caplog.set_level(logging.WARNING, logger="tradavity_mcp.shared")
    app = create_app(SandboxConfig(db=":memory:"))
    a = _replica(tmp_path, "a", app, dead)
    async with a.backend.held():
        assert await _verifier(a).verify_token(DEMO_KEY) is not None
        assert await _verifier(a).verify_token(REVOKED_KEY) is None
    lines = [r.getMessage() for r in caplog.records if "checks bearer keys" in r.getMessage()]
    assert len(lines) == 1
    assert "does not answer" in lines[0]
