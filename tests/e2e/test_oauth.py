"""`--auth oauth` over real loopback HTTP, with the sandbox behind it: the SDK's own
OAuth client through the real consent form, and every rule of the grant."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SECOND_PRO_KEY,
    FaultSpec,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.settings import Settings

from ..kit import TLS, data_of, http_transport, junk_key, me_checks, meta, text_of
from ..server.oauth.kit import (
    MCP_POST,
    REDIRECT,
    SANDBOX_URL,
    Served,
    authorize_url,
    consent,
    forms,
    initialize,
    oauth_server,
    pkce,
    query_of,
    register,
    token,
    tokens_for,
)

pytestmark = pytest.mark.anyio

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with oauth_server(tmp_path) as s:
        yield s


async def _status(http: httpx2.AsyncClient, served: Served, bearer: str) -> int:
    """The status of an `initialize` sent with this bearer (200: let in)."""
    return (await initialize(http, served.resource, bearer)).status_code


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_sdk_oauth_client_completes_the_flow_then_lists_and_calls_tools(
    served: Served,
) -> None:
    storage = MemoryStorage()
    landed: list[str] = []

    async def redirect_handler(url: str) -> None:
        # The user's browser: the real consent form, the real key, Allow.
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as browser:
            done = await consent(browser, url, DEMO_KEY)
        assert done.status_code == 302, done.text
        landed.append(done.headers["location"])

    async def callback_handler() -> AuthorizationCodeResult:
        query = query_of(landed[-1])
        return AuthorizationCodeResult(code=query["code"], state=query["state"], iss=query["iss"])

    provider = OAuthClientProvider(
        server_url=served.resource,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT)],
            client_name="SDK test client",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        async with (
            httpx2.AsyncClient(auth=provider, timeout=30, verify=TLS) as http,
            streamable_http_client(served.resource, http_client=http) as streams,
        ):
            yield streams

    async with Client(transport()) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"journal_trade", "find_trades", "sync_status"} <= names
        assert data_of(await client.call_tool("find_trades", {"limit": 3}))["count"] == 3
        me = data_of(await client.call_tool("lookup", {"name": "me"}))
        assert me["user"]["name"] == "Dana Demo"
    assert len(landed) == 1, "one consent, then tokens"
    assert urlsplit(landed[0]).netloc == urlsplit(REDIRECT).netloc
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    assert DEMO_KEY not in storage.tokens.access_token + storage.tokens.refresh_token


async def test_discovery_names_this_server(served: Served) -> None:
    async with httpx2.AsyncClient(verify=TLS) as http:
        resp = await http.post(served.resource, json=LIST, headers=MCP_POST)
        assert resp.status_code == 401
        challenge = resp.headers["www-authenticate"]
        prm_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        prm = (await http.get(prm_url)).json()
        assert prm["resource"] == served.resource
        assert prm["authorization_servers"] == [served.base]
        asm = (await http.get(served.base + "/.well-known/oauth-authorization-server")).json()
        assert asm["issuer"] == served.base
        assert asm["code_challenge_methods_supported"] == ["S256"]
        assert asm["client_id_metadata_document_supported"] is True
        for name in ("authorization", "token", "registration", "revocation"):
            assert asm[f"{name}_endpoint"].startswith(served.base + "/")
        # An unknown opaque bearer is a 401 with the same pointer.
        bad = await http.post(
            served.resource, json=LIST, headers={**MCP_POST, "Authorization": "Bearer nope"}
        )
        assert bad.status_code == 401
        assert "resource_metadata" in bad.headers["www-authenticate"]
        said = "this access token has expired, was revoked or is unknown here: connect again"
        assert bad.json()["error_description"].startswith(said)
        assert f'error_description="{said}' in bad.headers["www-authenticate"]


async def test_token_and_per_user_modes_name_no_authorization_server(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={}, base_url=SANDBOX_URL, state_dir=tmp_path / "s", require_key=False
    )
    hosted = HostedOptions(auth="per-user", public_url="http://127.0.0.1")
    server = build_server(
        settings,
        transport=SandboxTransport(create_app(SandboxConfig(db=":memory:"))),
        stdio=False,
        hosted=hosted,
    )
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, path="", lifespan=True) as base:
        async with httpx2.AsyncClient(verify=TLS) as http:
            prm = await http.get(base + "/.well-known/oauth-protected-resource/mcp")
            assert prm.status_code == 200
            assert prm.json()["resource"] == "http://127.0.0.1/mcp"
            assert "authorization_servers" not in prm.json()
            assert "app.tradavity.com" not in prm.text
            asm = await http.get(base + "/.well-known/oauth-authorization-server")
            assert asm.status_code == 404


async def test_registration_allows_listed_redirects_only_and_is_rate_limited(
    tmp_path: Path,
) -> None:
    with oauth_server(tmp_path, registrations_per_address=6) as s:  # refusals count too
        async with httpx2.AsyncClient(verify=TLS) as http:
            for bad in (
                "https://evil.example/callback",
                "http://10.0.0.5/cb",
                "https://claude.ai.evil.example/cb",
            ):
                resp = await http.post(s.base + "/register", json={"redirect_uris": [bad]})
                assert resp.status_code == 400, bad
                assert resp.json()["error"] == "invalid_redirect_uri"
            await register(http, s.base, "https://claude.ai/api/mcp/auth_callback")
            await register(http, s.base, "http://localhost:33418/callback")
            await register(http, s.base)
            limited = await http.post(s.base + "/register", json={"redirect_uris": [REDIRECT]})
            assert limited.status_code == 429


def _document_server(client_id_path: str, redirect: str) -> Starlette:
    async def document(request: Request) -> Response:
        url = str(request.url)
        return JSONResponse(
            {
                "client_id": url,
                "client_name": "Loopback Assistant",
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }
        )

    return Starlette(routes=[Route(client_id_path, document)])


async def test_client_metadata_document_on_loopback_accepted(tmp_path: Path) -> None:
    docs = _document_server("/oauth/client.json", REDIRECT)
    with (
        serve_in_thread(docs, path="") as doc_base,
        oauth_server(tmp_path, allow_loopback_documents=True) as s,
    ):
        client_id = doc_base + "/oauth/client.json"
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            page = await http.get(authorize_url(s, client_id, pkce()[1]), follow_redirects=True)
            assert page.status_code == 200
            assert "Loopback Assistant" in page.text
            got = await tokens_for(http, s, DEMO_KEY, client_id=client_id)
            assert await _status(http, s, got["access_token"]) == 200


async def test_client_metadata_documents_refused(tmp_path: Path) -> None:
    docs = _document_server("/oauth/client.json", REDIRECT)
    with serve_in_thread(docs, path="") as doc_base, oauth_server(tmp_path) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            for client_id in (
                "https://10.0.0.1/oauth/client.json",  # private
                "https://169.254.169.254/latest/meta-data/x",  # link-local (cloud metadata)
                "https://[fd00::1]/client.json",  # unique local IPv6
                "https://localhost/client.json",  # a name resolving to loopback
                doc_base + "/oauth/client.json",  # http, loopback: refused unless allowed
            ):
                resp = await http.get(authorize_url(s, client_id, pkce()[1]))
                assert resp.status_code == 400, client_id
                assert resp.json()["error"] == "invalid_request"
                assert "location" not in resp.headers


async def test_wrong_pkce_verifier_refused(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        client_id = (await register(http, served.base))["client_id"]
        _, challenge = pkce()
        done = await consent(http, authorize_url(served, client_id, challenge), DEMO_KEY)
        code = query_of(done.headers["location"])["code"]
        wrong, _ = pkce()
        resp = await token(
            http,
            served.base,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            client_id=client_id,
            code_verifier=wrong,
        )
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_grant"
        assert "access_token" not in resp.json()


async def test_code_used_twice_refused_and_its_grant_revoked(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        client_id = (await register(http, served.base))["client_id"]
        verifier, challenge = pkce()
        done = await consent(http, authorize_url(served, client_id, challenge), DEMO_KEY)
        location = done.headers["location"]
        assert location.startswith(REDIRECT + "?")
        query = query_of(location)
        assert query["state"] == "st"
        assert query["iss"] == served.base
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        first = await token(http, served.base, **form)
        assert first.status_code == 200
        assert await _status(http, served, first.json()["access_token"]) == 200
        again = await token(http, served.base, **form)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
        # RFC 6749 4.1.2: what the code bought is revoked too.
        assert await _status(http, served, first.json()["access_token"]) == 401


async def test_refresh_rotates_and_reuse_revokes_the_grant(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        got = await tokens_for(http, served, DEMO_KEY)
        client_id, first_refresh = got["client_id"], got["refresh_token"]
        rotated = await token(
            http,
            served.base,
            grant_type="refresh_token",
            refresh_token=first_refresh,
            client_id=client_id,
        )
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()
        assert second["refresh_token"] != first_refresh
        assert second["access_token"] != got["access_token"]
        assert await _status(http, served, second["access_token"]) == 200
        # The used refresh token again: refused, and the whole grant ends.
        reuse = await token(
            http,
            served.base,
            grant_type="refresh_token",
            refresh_token=first_refresh,
            client_id=client_id,
        )
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        assert await _status(http, served, second["access_token"]) == 401
        after = await token(
            http,
            served.base,
            grant_type="refresh_token",
            refresh_token=second["refresh_token"],
            client_id=client_id,
        )
        assert after.status_code == 400


async def test_revocation_ends_access_and_refresh(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        got = await tokens_for(http, served, DEMO_KEY)
        assert await _status(http, served, got["access_token"]) == 200
        resp = await http.post(
            served.base + "/revoke",
            data={"token": got["access_token"], "client_id": got["client_id"]},
        )
        assert resp.status_code == 200
        assert await _status(http, served, got["access_token"]) == 401
        refresh = await token(
            http,
            served.base,
            grant_type="refresh_token",
            refresh_token=got["refresh_token"],
            client_id=got["client_id"],
        )
        assert refresh.status_code == 400
        # Another client cannot revoke a grant that is not its own.
        mine = await tokens_for(http, served, DEMO_KEY)
        other = (await register(http, served.base))["client_id"]
        await http.post(
            served.base + "/revoke", data={"token": mine["access_token"], "client_id": other}
        )
        assert await _status(http, served, mine["access_token"]) == 200


async def test_tokens_are_bound_to_their_resource(tmp_path: Path) -> None:
    shared = tmp_path / "shared-state"
    with (
        oauth_server(tmp_path, state_dir=shared) as a,
        oauth_server(tmp_path, state_dir=shared) as b,
    ):
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            client_id = (await register(http, a.base))["client_id"]
            # Asking A for a grant to another resource is refused before any consent.
            refused = await http.get(
                authorize_url(a, client_id, pkce()[1], resource="https://elsewhere.example/mcp")
            )
            assert refused.status_code == 302
            assert query_of(refused.headers["location"])["error"] == "invalid_target"
            got = await tokens_for(http, a, DEMO_KEY, client_id=client_id)
            assert await _status(http, a, got["access_token"]) == 200
            # B shares A's store and secret, but is another resource: A's token is not for it.
            assert await _status(http, b, got["access_token"]) == 401


async def test_raw_key_as_bearer_still_works(served: Served) -> None:
    async with Client(http_transport(served.base, DEMO_KEY)) as client:
        me = data_of(await client.call_tool("lookup", {"name": "me"}))
        assert me["user"]["name"] == "Dana Demo"


async def test_two_users_isolated(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        a = (await tokens_for(http, served, DEMO_KEY))["access_token"]
        b = (await tokens_for(http, served, SECOND_PRO_KEY))["access_token"]
    same_id = meta({"claudecode/toolUseId": "toolu_shared_0001"})
    trade: dict[str, Any] = {}
    async with Client(http_transport(served.base, a)) as alice:
        assert (
            data_of(await alice.call_tool("lookup", {"name": "me"}))["user"]["name"] == "Dana Demo"
        )
        account = data_of(await alice.call_tool("lookup", {"name": "accounts"}))["items"][0]["name"]
        args = {
            "symbol": "MNQ",
            "direction": "long",
            "net_pnl": 313.13,
            "trade_date": "2026-11-20T10:00",
            "account": account,
        }
        trade = data_of(await alice.call_tool("create_trade", args, meta=same_id))
        assert trade["outcome"] == "done"
        alice_tags = {
            t["name"] for t in data_of(await alice.call_tool("lookup", {"name": "tags"}))["items"]
        }
        alice_accounts = json.loads(
            text_of_resource(await alice.read_resource("tradavity://accounts"))
        )
    async with Client(http_transport(served.base, b)) as bob:
        assert data_of(await bob.call_tool("lookup", {"name": "me"}))["user"]["name"] != "Dana Demo"
        mine = data_of(await bob.call_tool("find_trades", {"symbol": "MNQ", "limit": 200}))
        assert 313.13 not in {t["net_pnl"] for t in mine["trades"]}
        bob_tags = {
            t["name"] for t in data_of(await bob.call_tool("lookup", {"name": "tags"}))["items"]
        }
        assert alice_tags != bob_tags
        bob_accounts = json.loads(text_of_resource(await bob.read_resource("tradavity://accounts")))
        assert bob_accounts != alice_accounts
        # The ledger: the same host call id from another user is a new call, not a replay.
        account = data_of(await bob.call_tool("lookup", {"name": "accounts"}))["items"][0]["name"]
        args = {
            "symbol": "MNQ",
            "direction": "long",
            "net_pnl": 1.5,
            "trade_date": "2026-11-20T10:00",
            "account": account,
        }
        bobs = data_of(await bob.call_tool("create_trade", args, meta=same_id))
        assert bobs["outcome"] == "done"
        other = await bob.call_tool("get_trade", {"trade_number": trade["trade_number"]})
        assert other.is_error or data_of(other)["net_pnl"] != 313.13
    # /sync/stream: each token reaches only its own user's events.
    async with Client(http_transport(served.base, a)) as alice:
        rows = data_of(await alice.call_tool("lookup", {"name": "connections"}))["items"]
        good = next(r["id"] for r in rows if r["status"] == "active")
        run = data_of(await alice.call_tool("trigger_sync", {"connection": good}))["run_id"]
    assert run in await _stream(served, a)
    assert run not in await _stream(served, b)


def text_of_resource(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.contents)


async def _stream(served: Served, bearer: str) -> str:
    """What /sync/stream replays to this bearer: read until the first heartbeat, which
    the stream sends once the replay is over (the test server beats every 0.2 s)."""
    lines: list[str] = []
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {bearer}"}, timeout=30, verify=TLS
        ) as http,
        http.stream("GET", served.base + "/sync/stream", params={"replay": 20}) as resp,
    ):
        assert resp.status_code == 200
        with anyio.fail_after(10):
            async for line in resp.aiter_lines():
                if line == ": heartbeat":
                    break
                lines.append(line)
    return "\n".join(lines)


async def test_consent_page_guards(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        client_id = (await register(http, served.base))["client_id"]
        start = await http.get(authorize_url(served, client_id, pkce()[1]))
        page = await http.get(start.headers["location"])
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        assert "<script" not in page.text.lower()
        assert 'type="password"' in page.text
        assert "Test assistant" in page.text
        hidden = forms(page.text).hidden
        url = served.base + "/consent"
        # Another site's form, or a CSRF token that is not this page's: refused.
        evil = await http.post(
            url,
            data={**hidden, "api_key": DEMO_KEY, "action": "check"},
            headers={"Origin": "https://evil.example"},
        )
        assert evil.status_code == 403
        forged = await http.post(
            url, data={**hidden, "csrf": "0" * 64, "api_key": DEMO_KEY, "action": "check"}
        )
        assert forged.status_code == 403
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as cookieless:
            stolen = await cookieless.post(
                url, data={**hidden, "api_key": DEMO_KEY, "action": "check"}
            )
        assert stolen.status_code == 403
        # A key Tradavity refuses: the page says why, no code.
        wrong = await http.post(
            url, data={**hidden, "api_key": "tvty_" + "9" * 48, "action": "check"}
        )
        assert wrong.status_code == 401
        assert "location" not in wrong.headers
        assert any("refused" in e for e in forms(wrong.text).errors)
        assert "9" * 48 not in wrong.text
        approve = await http.post(url, data={**hidden, "action": "approve"})
        assert "location" not in approve.headers
        # Cancel: back to the client with access_denied.
        cancel = await http.post(url, data={**hidden, "action": "deny"})
        assert cancel.status_code == 302
        assert query_of(cancel.headers["location"])["error"] == "access_denied"


async def test_the_key_is_in_no_response_page_token_log_or_row(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def record(response: httpx2.Response) -> None:
        await response.aread()
        seen.append(str(response.headers))
        seen.append(response.text)

    async with httpx2.AsyncClient(
        timeout=30, event_hooks={"response": [record]}, verify=TLS
    ) as http:
        got = await tokens_for(http, served, DEMO_KEY)
        seen.append(json.dumps(got))
        refreshed = await token(
            http,
            served.base,
            grant_type="refresh_token",
            refresh_token=got["refresh_token"],
            client_id=got["client_id"],
        )
        assert refreshed.status_code == 200
        assert await _status(http, served, refreshed.json()["access_token"]) == 200
        # A half-finished consent (key checked, not yet allowed) keeps it sealed too.
        client_id = (await register(http, served.base))["client_id"]
        await consent(http, authorize_url(served, client_id, pkce()[1]), DEMO_KEY, approve=False)
    async with Client(http_transport(served.base, refreshed.json()["access_token"])) as client:
        result = await client.call_tool("lookup", {"name": "me"})
        seen.append(text_of(result))
    everything = "\n".join(seen)
    assert len(everything) > 2000
    for canary in (DEMO_KEY, DEMO_KEY[5:]):
        assert canary not in everything
        assert canary not in caplog.text
    db = served.state_dir / "oauth.sqlite3"
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [row for t in tables for row in conn.execute(f"SELECT * FROM {t}")]  # noqa: S608
    assert any(isinstance(v, bytes) and v for row in rows for v in row), "a sealed key is stored"
    dumped = repr(rows)
    assert DEMO_KEY[5:] not in dumped
    assert got["access_token"] not in dumped
    assert got["refresh_token"] not in dumped
    for path in served.state_dir.iterdir():
        if path.is_file():
            raw = path.read_bytes()
            assert DEMO_KEY[5:].encode() not in raw, path.name


# --- limits that never refuse an honest user ---------------------------------------------


def _port(served: Served) -> int:
    """The port a server served on (its tokens are bound to its URL)."""
    port = urlsplit(served.base).port
    assert port is not None
    return port


async def test_after_a_restart_a_granted_token_is_let_in_while_junk_spends_the_budget(
    tmp_path: Path,
) -> None:
    """A restarted server has checked no key yet. While junk keys from 127.0.0.1 keep its
    refusal budget spent (and a junk key always waiting for the next token), an access
    token from that address is let in at once: its grant vouches for its key."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        with oauth_server(tmp_path, sandbox=sandbox) as first:
            access = (await tokens_for(http, first, DEMO_KEY))["access_token"]
        with oauth_server(tmp_path, sandbox=sandbox, port=_port(first)) as again:
            stop, spent = anyio.Event(), anyio.Event()
            junk: list[int] = []

            async def flood() -> None:
                while not stop.is_set():
                    junk.append(await _status(http, again, junk_key()))
                    if me_checks(sandbox, 401) >= 20 and len(junk) >= 40:
                        spent.set()
                    await anyio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(flood)
                with anyio.fail_after(20):
                    await spent.wait()
                let_in = await _status(http, again, access)
                stop.set()
            assert let_in == 200
            assert set(junk) == {401}
            assert me_checks(sandbox, 200) >= 1  # the granted key was checked, once
            async with Client(http_transport(again.base, access)) as client:
                me = data_of(await client.call_tool("lookup", {"name": "me"}))
                assert me["user"]["name"] == "Dana Demo"
    print(f"{len(junk)} junk keys during the check; {me_checks(sandbox, 401)} reached /me")
    assert me_checks(sandbox, 401) <= 30  # the flood still spent only its own budget


async def test_after_a_restart_a_granted_key_the_api_cannot_check_stands_on_its_grant(
    tmp_path: Path,
) -> None:
    """Restarted while the API fails every request: the access token is let in with its
    grant's scopes (the key was checked when the user consented); a raw key never seen
    cannot be checked, and is refused."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    stranger = sandbox.state.sandbox.issue_key(SECOND_PRO_KEY, name="Never seen")
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        with oauth_server(tmp_path, sandbox=sandbox) as first:
            access = (await tokens_for(http, first, DEMO_KEY))["access_token"]
        sandbox.state.sandbox.set_faults(FaultSpec(error_500=1.0))
        with oauth_server(tmp_path, sandbox=sandbox, port=_port(first)) as again:
            assert await _status(http, again, stranger) == 401
            assert await _status(http, again, access) == 200
            async with Client(http_transport(again.base, access)) as client:
                names = {t.name for t in (await client.list_tools()).tools}
            assert {"journal_trade", "find_trades"} <= names  # the grant's scopes
            assert sandbox.state.sandbox.counters["error_500"] >= 2  # both /me failed
            sandbox.state.sandbox.set_faults(None)
            async with Client(http_transport(again.base, access)) as client:
                me = data_of(await client.call_tool("lookup", {"name": "me"}))
                assert me["user"]["name"] == "Dana Demo"


async def _consent_page(http: httpx2.AsyncClient, served: Served, client_id: str) -> dict[str, str]:
    """A new sign-in: /authorize, then the consent page's hidden fields."""
    start = await http.get(authorize_url(served, client_id, pkce()[1]))
    page = await http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return forms(page.text).hidden


async def _try_key(
    http: httpx2.AsyncClient, served: Served, hidden: dict[str, str], key: str
) -> httpx2.Response:
    return await http.post(
        served.base + "/consent", data={**hidden, "api_key": key, "action": "check"}
    )


async def test_wrong_keys_on_the_consent_page_end_one_sign_in_not_the_address(
    served: Served,
) -> None:
    """From one address (127.0.0.1): five wrong keys end that sign-in only; a right key
    counts for nothing, so sign-ins after many typos go through; only key stuffing (30
    wrong keys within the minute) stops the address."""
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        client_id = (await register(http, served.base))["client_id"]
        typos = await _consent_page(http, served, client_id)
        for _ in range(5):
            assert (await _try_key(http, served, typos, junk_key())).status_code == 401
        over = await _try_key(http, served, typos, DEMO_KEY)
        assert over.status_code == 429
        assert any("this sign-in" in e for e in forms(over.text).errors)
        # Ten more wrong keys on two more sign-ins: fifteen from this address in all.
        for _ in range(2):
            hidden = await _consent_page(http, served, client_id)
            for _ in range(5):
                assert (await _try_key(http, served, hidden, junk_key())).status_code == 401
        # Right keys, on twelve sign-ins: each accepted, none counted.
        for _ in range(12):
            hidden = await _consent_page(http, served, client_id)
            checked = await _try_key(http, served, hidden, DEMO_KEY)
            assert checked.status_code == 200, checked.text
            assert ("action", "approve") in forms(checked.text).buttons
        # Key stuffing: three more sign-ins' worth of wrong keys make thirty; the next
        # check from this address waits for the minute to pass.
        for _ in range(3):
            hidden = await _consent_page(http, served, client_id)
            for _ in range(5):
                assert (await _try_key(http, served, hidden, junk_key())).status_code == 401
        hidden = await _consent_page(http, served, client_id)
        stopped = await _try_key(http, served, hidden, DEMO_KEY)
        assert stopped.status_code == 429
        assert any("your network" in e for e in forms(stopped.text).errors)
