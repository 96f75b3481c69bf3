"""`--auth oauth` on two replicas sharing one PostgreSQL store (`--store`), over real
loopback HTTP with the sandbox behind them: every step of a connection may land on
either replica, as behind a load balancer without affinity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from mcp import Client
from pydantic import SecretStr

from tradavity_mcp.api.models import Me
from tradavity_mcp.cli import main
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.server.oauth import OAuthOptions, OAuthServer
from tradavity_mcp.server.oauth.store_pg import PgOAuthStore
from tradavity_mcp.settings import ConfigError, Settings

from ...kit import TLS, http_transport, text_of
from .kit import REDIRECT, SANDBOX_URL, forms, free_port, initialize, pkce, query_of

pytestmark = pytest.mark.anyio

#: Where clients reach "the service": the load balancer's address, the same for every
#: replica (the issuer, and the resource tokens are bound to).
PUBLIC = "http://mcp.test"
RESOURCE = PUBLIC + "/mcp"
SECRET = "r" * 48


@dataclass
class Replica:
    base: str

    def url(self, public: str) -> str:
        """A URL the service gave out (on PUBLIC), sent to this replica instead."""
        return self.base + public.removeprefix(PUBLIC)


@contextmanager
def replicas(
    tmp_path: Path,
    store_url: str,
    count: int = 2,
    *,
    redis_url: str | None = None,
    registrations: int = 10,
) -> Iterator[list[Replica]]:
    """`count` servers with `--auth oauth` on one store and one secret, one sandbox (and
    one Redis with `redis_url`); `registrations` per client address."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    with ExitStack() as stack:
        out = []
        for n in range(count):
            state = tmp_path / f"replica{n}"
            settings = Settings.load(
                environ={},
                base_url=SANDBOX_URL,
                state_dir=state,
                require_key=False,
                redis_url=redis_url,
            )
            server = build_server(
                settings,
                transport=SandboxTransport(sandbox),
                stdio=False,
                hosted=HostedOptions(auth="per-user", public_url=PUBLIC),
            )
            options = OAuthOptions(
                public_url=PUBLIC,
                state_dir=state,
                loopback=True,
                secret_key=SecretStr(SECRET),
                store_url=store_url,
                registrations_per_address=registrations,
            )
            app = build_http_app(server, kind="http", host="127.0.0.1", oauth=options)
            port = free_port()
            stack.enter_context(serve_in_thread(app, port=port, path="", lifespan=True))
            out.append(Replica(f"http://127.0.0.1:{port}"))
        yield out


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as client:
        yield client


REGISTRATION = {
    "redirect_uris": [REDIRECT],
    "client_name": "Test assistant",
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
}


async def _register(http: httpx2.AsyncClient, replica: Replica) -> str:
    resp = await http.post(replica.base + "/register", json=REGISTRATION)
    assert resp.status_code == 201, resp.text
    client_id: str = resp.json()["client_id"]
    return client_id


async def _code(
    http: httpx2.AsyncClient, client_id: str, challenge: str, steps: list[Replica]
) -> str:
    """The consent as a browser answers it, each request on the next of `steps`:
    /authorize, the page, the key checked, Allow. Returns the code."""
    authorize, page_on, check_on, approve_on = steps
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st",
        "resource": RESOURCE,
    }
    start = await http.get(authorize.base + "/authorize", params=query)
    assert start.status_code == 302, start.text
    page = await http.get(page_on.url(start.headers["location"]))
    assert page.status_code == 200, page.text
    checked = await http.post(
        check_on.base + "/consent",
        data={**forms(page.text).hidden, "api_key": DEMO_KEY, "action": "check"},
    )
    assert checked.status_code == 200, checked.text
    assert ("action", "approve") in forms(checked.text).buttons
    done = await http.post(
        approve_on.base + "/consent", data={**forms(checked.text).hidden, "action": "approve"}
    )
    assert done.status_code == 302, done.text
    return query_of(done.headers["location"])["code"]


async def _tokens(
    http: httpx2.AsyncClient, client_id: str, steps: list[Replica], exchange_on: Replica
) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = await _code(http, client_id, challenge, steps)
    resp = await http.post(
        exchange_on.base + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": RESOURCE,
        },
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def _refresh(
    http: httpx2.AsyncClient, replica: Replica, client_id: str, refresh: str
) -> httpx2.Response:
    return await http.post(
        replica.base + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id},
    )


async def _status(http: httpx2.AsyncClient, replica: Replica, bearer: str) -> int:
    return (await initialize(http, replica.base + "/mcp", bearer)).status_code


async def test_a_connection_spread_over_two_replicas(
    tmp_path: Path, postgres_url: str, http: httpx2.AsyncClient
) -> None:
    with replicas(tmp_path, postgres_url) as (a, b):
        client_id = await _register(http, a)
        # Authorize on B, the page from A, the key checked on B, Allow on A, code on B.
        got = await _tokens(http, client_id, [b, a, b, a], exchange_on=b)
        async with Client(http_transport(a.base, got["access_token"])) as client:
            me = text_of(await client.call_tool("lookup", {"name": "me"}))
        assert "demo" in me.casefold()
        assert DEMO_KEY[5:] not in me
        # Refreshed on A; the new access token works on B at once.
        turned = await _refresh(http, a, client_id, got["refresh_token"])
        assert turned.status_code == 200, turned.text
        new = turned.json()
        assert await _status(http, b, new["access_token"]) == 200
        # The old refresh token replayed on B: refused, and the grant ends on A too.
        replay = await _refresh(http, b, client_id, got["refresh_token"])
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        assert await _status(http, a, new["access_token"]) == 401


async def test_a_code_redeemed_on_two_replicas_at_once_is_redeemed_once(
    tmp_path: Path, postgres_url: str, http: httpx2.AsyncClient
) -> None:
    with replicas(tmp_path, postgres_url) as (a, b):
        client_id = await _register(http, b)
        verifier, challenge = pkce()
        code = await _code(http, client_id, challenge, [a, a, a, a])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": RESOURCE,
        }
        answers = await asyncio.gather(
            http.post(a.base + "/token", data=form), http.post(b.base + "/token", data=form)
        )
        assert sorted(r.status_code for r in answers) == [200, 400]
        (refused,) = [r for r in answers if r.status_code == 400]
        assert refused.json()["error"] == "invalid_grant"


async def test_two_replicas_refreshing_one_token_at_once_one_wins(
    tmp_path: Path, postgres_url: str, http: httpx2.AsyncClient
) -> None:
    with replicas(tmp_path, postgres_url) as (a, b):
        client_id = await _register(http, a)
        for _ in range(3):
            got = await _tokens(http, client_id, [a, b, a, b], exchange_on=a)
            answers = await asyncio.gather(
                _refresh(http, a, client_id, got["refresh_token"]),
                _refresh(http, b, client_id, got["refresh_token"]),
            )
            assert sorted(r.status_code for r in answers) == [200, 400]
            (refused,) = [r for r in answers if r.status_code == 400]
            assert refused.json()["error"] == "invalid_grant"
            # Presented again now, after its rotation: a replay, refused (and the grant
            # ends, with the winner's tokens).
            (won,) = [r for r in answers if r.status_code == 200]
            replay = await _refresh(http, b, client_id, got["refresh_token"])
            assert replay.json()["error"] == "invalid_grant"
            assert await _status(http, a, won.json()["access_token"]) == 401


async def test_a_revocation_on_one_replica_is_seen_by_the_other_at_once(
    tmp_path: Path, postgres_url: str, http: httpx2.AsyncClient
) -> None:
    with replicas(tmp_path, postgres_url) as (a, b):
        client_id = await _register(http, a)
        got = await _tokens(http, client_id, [a, a, a, a], exchange_on=a)
        assert await _status(http, a, got["access_token"]) == 200
        resp = await http.post(
            b.base + "/revoke", data={"token": got["access_token"], "client_id": client_id}
        )
        assert resp.status_code == 200
        assert await _status(http, a, got["access_token"]) == 401
        refused = await _refresh(http, a, client_id, got["refresh_token"])
        assert refused.json()["error"] == "invalid_grant"
        # And `tradavity-mcp grants revoke` on the store ends a grant for every replica.
        again = await _tokens(http, client_id, [b, b, b, b], exchange_on=b)
        store = PgOAuthStore(postgres_url)
        (grant,) = store.grants()
        store.close()
        assert main(["grants", "revoke", grant.id, "--store", postgres_url]) == 0
        assert await _status(http, a, again["access_token"]) == 401
        assert await _status(http, b, again["access_token"]) == 401


async def test_a_lost_store_is_a_503_not_a_401(
    tmp_path: Path, postgres_url: str, postgres_server: str, http: httpx2.AsyncClient
) -> None:
    with replicas(tmp_path, postgres_url, count=1) as (a,):
        client_id = await _register(http, a)
        got = await _tokens(http, client_id, [a, a, a, a], exchange_on=a)
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            name = postgres_url.rpartition("/")[2]
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())
        down = await initialize(http, a.base + "/mcp", got["access_token"])
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json()["error"] == "temporarily_unavailable"
        assert "postgresql" not in down.text
        refreshed = await _refresh(http, a, client_id, got["refresh_token"])
        assert refreshed.status_code == 503


async def _no_check(key: str) -> Me:
    raise AssertionError("no key is checked here")


def test_a_shared_store_needs_the_one_secret_of_every_replica(
    tmp_path: Path,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def options(secret: str | None) -> OAuthOptions:
        return OAuthOptions(
            public_url=PUBLIC,
            state_dir=tmp_path,
            loopback=True,
            secret_key=SecretStr(secret) if secret else None,
            store_url=postgres_url,
        )

    # No secret: a generated one would be this machine's only. Refused at start, on
    # loopback too.
    with pytest.raises(ConfigError, match="the same on every replica"):
        OAuthServer(options(None), _no_check)
    assert not (tmp_path / "oauth-secret.key").exists()
    monkeypatch.delenv("TRADAVITY_MCP_SECRET_KEY", raising=False)
    start = ["--transport", "http", "--auth", "oauth", "--state-dir", str(tmp_path)]
    assert main([*start, "--store", postgres_url]) == 2
    assert "the same on every replica" in capsys.readouterr().err
    OAuthServer(options(SECRET), _no_check).close()
    with pytest.raises(ConfigError, match="not the secret") as refused:
        OAuthServer(options("x" * 48), _no_check)
    assert SECRET not in str(refused.value)
    # Changing it on purpose: every grant ends first, then the new secret is taken.
    assert main(["grants", "revoke-all", "--store", postgres_url]) == 0
    assert "revoked 0 grants" in capsys.readouterr().out
    OAuthServer(options("x" * 48), _no_check).close()


def test_grants_listed_from_the_store(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grants", "list", "--store", postgres_url]) == 0
    assert capsys.readouterr().out.strip() == "no grants"
    # Nothing is written to the state directory when the store is PostgreSQL.
    state = tmp_path / "state"
    assert main(["grants", "list", "--store", postgres_url, "--state-dir", str(state)]) == 0
    assert not (state / "oauth.sqlite3").exists()
    assert main(["grants", "revoke", "nope", "--store", postgres_url]) == 1
    assert "no live grant nope" in capsys.readouterr().out
    unreachable = postgres_url.rpartition("/")[0] + "/no_such_db"
    assert main(["grants", "list", "--store", unreachable]) == 1
    err = capsys.readouterr().err
    assert "database does not exist" in err


async def test_registrations_are_limited_once_for_all_replicas_sharing_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, http: httpx2.AsyncClient
) -> None:
    """Three registrations per address: through two replicas sharing Redis, three in all;
    without Redis, each replica grants its own three."""

    async def statuses(group: list[Replica]) -> list[int]:
        return [
            (await http.post(group[i % 2].base + "/register", json=REGISTRATION)).status_code
            for i in range(6)
        ]

    with replicas(tmp_path / "shared", postgres_url, redis_url=redis_url, registrations=3) as two:
        assert await statuses(two) == [201, 201, 201, 429, 429, 429]
    with replicas(tmp_path / "alone", postgres_url, registrations=3) as two:
        assert await statuses(two) == [201] * 6


async def test_registration_works_while_redis_is_away(
    tmp_path: Path, postgres_url: str, http: httpx2.AsyncClient
) -> None:
    """Redis down: each replica limits registrations on its own, and still registers."""
    away = f"redis://127.0.0.1:{free_port()}/0"
    with replicas(tmp_path, postgres_url, redis_url=away, registrations=2) as (a, b):
        codes = [(await http.post(r.base + "/register", json=REGISTRATION)).status_code
                 for r in (a, a, a, b)]  # fmt: skip
    assert codes == [201, 201, 429, 201]
