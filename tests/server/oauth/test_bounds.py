"""What strangers can make `--auth oauth` keep, bounded, over real loopback HTTP from many
client addresses (all of 127/8 is loopback): each stored `/authorize` parameter and
registration field, the requests per address (an IPv6 client by its /64), the consent
requests and registrations in all, measured in the store's bytes and rows under a
flood; and a flood of registrations from new addresses does not lock out a connector
already in use."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tradavity_mcp.sandbox import DEMO_KEY, serve_in_thread
from tradavity_mcp.server.auth import address_key
from tradavity_mcp.server.oauth.bounds import KEPT_FIELDS
from tradavity_mcp.server.oauth.stores import STORE_FILE

from ...kit import TLS
from .kit import (
    REDIRECT,
    Served,
    authorize_params,
    authorize_url,
    oauth_server,
    pkce,
    query_of,
    register,
    tokens_for,
)

pytestmark = pytest.mark.anyio

REGISTRATION = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}


def _rows(served: Served, table: str) -> int:
    with closing(sqlite3.connect(served.state_dir / STORE_FILE)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def _store_bytes(served: Served) -> int:
    """The store's size as SQLite counts it: its pages, in use or free (read through the
    write-ahead log, so before any checkpoint too)."""
    with closing(sqlite3.connect(served.state_dir / STORE_FILE)) as db:
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        size = int(db.execute("PRAGMA page_size").fetchone()[0])
    return pages * size


@asynccontextmanager
async def _from(address: str) -> AsyncIterator[httpx2.AsyncClient]:
    """A client whose connections come from `address` (on loopback)."""
    transport = httpx2.AsyncHTTPTransport(local_address=address, verify=TLS)
    async with httpx2.AsyncClient(transport=transport, timeout=60) as http:
        yield http


async def _raw_get(served: Served, url: str) -> bytes:
    """The status line answering a GET of `url` sent as it is (HTTP clients refuse to
    send a URL this long; a browser or a script need not)."""
    parts = urlsplit(url)
    async with await anyio.connect_tcp(parts.hostname or "", parts.port or 80) as sock:
        target = f"{parts.path}?{parts.query}"
        await sock.send(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        answer = b""
        with anyio.fail_after(30):
            while b"\r\n" not in answer:
                answer += await sock.receive()
    return answer.split(b"\r\n", 1)[0]


async def _register_status(http: httpx2.AsyncClient, base: str) -> int:
    return (await http.post(base + "/register", json=REGISTRATION)).status_code


async def test_a_long_state_is_refused_where_it_came_from_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    with oauth_server(tmp_path) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            client_id = (await register(http, s.base))["client_id"]
            challenge = pkce()[1]
            before = _store_bytes(s)
            huge = authorize_params(s, client_id, challenge, state="s" * 100_000)
            posted = await http.post(s.base + "/authorize", data=huge)
            assert posted.status_code == 400
            assert "location" not in posted.headers, "never sent back to the client"
            assert posted.json() == {
                "error": "invalid_request",
                "error_description": "state is 100,000 characters long; at most 2,048 are accepted",
            }
            # In a URL, that much is more than the HTTP server reads of a request line.
            status_line = await _raw_get(
                s, authorize_url(s, client_id, challenge, state="s" * 100_000)
            )
            assert status_line.startswith(b"HTTP/1.1 4"), status_line
            # Just past the bound, in a URL: the server's own words.
            over = await http.get(authorize_url(s, client_id, challenge, state="s" * 2049))
            assert over.status_code == 400
            assert "location" not in over.headers
            assert over.json()["error_description"].startswith("state is 2,049 characters")
            # A client id or redirect URI too long is not checked, so never redirected to.
            for name, value in (("client_id", "c" * 600), ("redirect_uri", REDIRECT + "?" * 600)):
                params = {**authorize_params(s, client_id, challenge), name: value}
                refused = await http.post(s.base + "/authorize", data=params)
                assert refused.status_code == 400, name
                assert "location" not in refused.headers, name
                assert refused.json()["error_description"].startswith(f"{name} is 6"), name
            # A code challenge that is no S256 hash is told to the (checked) client.
            odd = await http.post(
                s.base + "/authorize", data=authorize_params(s, client_id, "c" * 5000)
            )
            assert odd.status_code == 302
            told = query_of(odd.headers["location"])
            assert odd.headers["location"].startswith(REDIRECT)
            assert told["error"] == "invalid_request"
            assert told["state"] == "st"
            assert "code_challenge must be 43 characters" in told["error_description"]
            assert _rows(s, "pending") == 0
            assert _store_bytes(s) == before
            # At the bound: on to the consent page.
            at = authorize_params(s, client_id, challenge, state="s" * 2048)
            ok = await http.post(s.base + "/authorize", data=at)
            assert ok.status_code == 302
            assert "/consent?request=" in ok.headers["location"]
            assert _rows(s, "pending") == 1


async def test_a_long_scope_is_told_to_the_client(tmp_path: Path) -> None:
    """A metadata-document client may list a long scope; asked for at `/authorize`, it
    is refused (and the client told: it and its redirect URI were checked)."""
    scopes = [f"scope{n:03d}" for n in range(60)]  # 539 characters

    async def document(request: Request) -> Response:
        return JSONResponse(
            {"client_id": str(request.url), "redirect_uris": [REDIRECT], "scope": " ".join(scopes)}
        )

    docs = Starlette(routes=[Route("/client.json", document)])
    with (
        serve_in_thread(docs, path="") as doc_base,
        oauth_server(tmp_path, allow_loopback_documents=True) as s,
    ):
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            params = authorize_params(s, doc_base + "/client.json", pkce()[1])
            resp = await http.post(
                s.base + "/authorize", data={**params, "scope": " ".join(scopes)}
            )
            assert resp.status_code == 302
            told = query_of(resp.headers["location"])
            assert told["error"] == "invalid_scope"
            assert told["error_description"] == (
                "scope is 539 characters long; at most 512 are accepted"
            )
            fewer = await http.post(
                s.base + "/authorize", data={**params, "scope": " ".join(scopes[:10])}
            )
            assert "/consent?request=" in fewer.headers["location"]
        assert _rows(s, "pending") == 1


async def test_a_registration_is_bounded_and_keeps_only_what_is_used(tmp_path: Path) -> None:
    with oauth_server(tmp_path, registrations_per_address=20) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            cases: list[tuple[dict[str, Any], str]] = [
                (
                    {"client_name": "n" * 100_000},
                    "client_name is 100,000 characters long; at most 200 are accepted",
                ),
                ({"client_name": "n" * 201}, "client_name is 201 characters long"),
                ({"redirect_uris": [REDIRECT] * 6}, "redirect_uris lists 6 URIs; at most 5"),
                (
                    {"redirect_uris": [REDIRECT + "?" + "x" * 600]},
                    "a redirect URI is 628 characters long; at most 512",
                ),
                ({"scope": "s " * 300}, "scope is 600 characters long; at most 512"),
                (
                    {"jwks": {"keys": [{"n": "x" * 20_000}]}},
                    "at most 16,384 are accepted (the largest field: jwks, 20,019 bytes, a "
                    "field this server does not use)",
                ),
                ({"padding": "p" * 20_000}, "(the largest field: padding, 20,002 bytes"),
            ]
            for extra, said in cases:
                resp = await http.post(s.base + "/register", json={**REGISTRATION, **extra})
                assert resp.status_code == 400, list(extra)
                assert resp.json()["error"] == "invalid_client_metadata"
                assert said in resp.json()["error_description"], resp.text
            assert _rows(s, "clients") == 0
            kept = await http.post(
                s.base + "/register",
                json={
                    **REGISTRATION,
                    "client_name": "Small",
                    "logo_uri": "https://app.example/logo.png",
                    "contacts": ["ops@app.example"],
                    "jwks": {"keys": [{"kty": "RSA", "n": "x" * 2000}]},
                    "software_id": "app",
                    "grant_types": ["authorization_code", "refresh_token", "urn:made:up"],
                },
            )
            assert kept.status_code == 201, kept.text
            body = kept.json()
            for dropped in ("logo_uri", "contacts", "jwks", "software_id"):
                assert dropped not in body, dropped
            assert body["grant_types"] == ["authorization_code", "refresh_token"]
            with closing(sqlite3.connect(s.state_dir / STORE_FILE)) as db:
                (info,) = db.execute("SELECT info FROM clients").fetchone()
            stored = json.loads(info)
            issued = {"client_id", "client_id_issued_at"}
            assert set(stored) <= KEPT_FIELDS | issued
            assert stored["client_name"] == "Small"
            assert len(info) < 600
            # Usable as registered: on to the consent page.
            go = await http.get(authorize_url(s, body["client_id"], pkce()[1]))
            assert "/consent?request=" in go.headers["location"]


async def test_authorization_requests_are_limited_per_address(tmp_path: Path) -> None:
    with oauth_server(tmp_path, authorizations_per_address=4) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            url = authorize_url(s, (await register(http, s.base))["client_id"], pkce()[1])
        async with _from("127.0.5.1") as one, _from("127.0.5.2") as two:
            answers = [await one.get(url) for _ in range(5)]
            assert [a.status_code for a in answers] == [302] * 4 + [429]
            limited = answers[-1]
            assert "location" not in limited.headers
            assert limited.headers["retry-after"] == "60"
            assert limited.json()["error"] == "temporarily_unavailable"
            assert (await two.get(url)).status_code == 302, "another address has its own"
        assert _rows(s, "pending") == 5


def test_an_address_is_counted_by_its_ipv6_64() -> None:
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("unknown") == "unknown"


def _peer_from_header(app: ASGIApp) -> ASGIApp:
    """The app as behind a network where each request comes from the address its test
    names (`x-test-peer`): loopback has one IPv6 address only."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peer = dict(scope["headers"]).get(b"x-test-peer")
            if peer is not None:
                scope = {**scope, "client": (peer.decode(), 40000)}
        await app(scope, receive, send)

    return wrapped


async def test_an_ipv6_64_shares_one_budget(tmp_path: Path) -> None:
    with oauth_server(
        tmp_path,
        wrap=_peer_from_header,
        registrations_per_address=2,
        authorizations_per_address=3,
    ) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:

            async def registered(peer: str) -> int:
                resp = await http.post(
                    s.base + "/register", json=REGISTRATION, headers={"x-test-peer": peer}
                )
                return resp.status_code

            async def authorized(peer: str) -> int:
                return (await http.get(url, headers={"x-test-peer": peer})).status_code

            assert await registered("2001:db8:1:2::1") == 201
            assert await registered("2001:db8:1:2:ffff:ffff:ffff:ffff") == 201
            assert await registered("2001:db8:1:2::99") == 429, "one /64, one budget"
            assert await registered("2001:db8:1:3::1") == 201, "the next /64 has its own"
            assert await registered("192.0.2.7") == 201
            assert await registered("::ffff:192.0.2.7") == 201
            assert await registered("192.0.2.7") == 429, "IPv4-mapped is the IPv4 address"
            client_id = (await register(http, s.base))["client_id"]
            url = authorize_url(s, client_id, pkce()[1])
            peers = ["2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7:1::"]
            assert [await authorized(p) for p in peers] == [302, 302, 302]
            assert await authorized("2001:db8:7:7:abcd::1") == 429
            assert await authorized("2001:db8:7:8::1") == 302


async def test_a_flood_from_many_addresses_leaves_the_store_bounded(tmp_path: Path) -> None:
    """Rounds of registrations and authorization requests, each as large as the bounds
    let through, from 20 addresses a round: the store stops growing at its bounds."""
    pending_cap, registrations_total = 100, 30
    client_name = "n" * 200
    uris = [f"http://127.0.0.1:9/cb{n}?" for n in range(5)]
    uris = [u + "x" * (512 - len(u)) for u in uris]
    scope = " ".join(f"scope{n:03d}" for n in range(56))
    big_registration = {
        "redirect_uris": uris,
        "client_name": client_name,
        "scope": scope,
        "token_endpoint_auth_method": "none",
    }
    with oauth_server(
        tmp_path, max_pending=pending_cap, registrations_total=registrations_total
    ) as s:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            client_id = (await register(http, s.base))["client_id"]
        params = authorize_params(s, client_id, pkce()[1], state="s" * 2048)
        statuses: dict[int, int] = {}

        async def one_address(address: str) -> None:
            async with _from(address) as http:
                for _ in range(3):
                    resp = await http.post(s.base + "/register", json=big_registration)
                    statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                for _ in range(22):
                    resp = await http.post(s.base + "/authorize", data=params)
                    statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        async def flood(round_: int) -> None:
            async with anyio.create_task_group() as tg:
                for n in range(1, 21):
                    tg.start_soon(one_address, f"127.0.{10 + round_}.{n}")

        sizes = []
        started = time.monotonic()
        for round_ in range(2):
            await flood(round_)
            sizes.append(_store_bytes(s))
            assert _rows(s, "pending") == pending_cap
            assert _rows(s, "clients") == registrations_total
        took = time.monotonic() - started
        print(f"store after each round: {sizes} bytes; {statuses}; {took:.1f} s")
        # 40 addresses x (3 registrations + 22 requests): all but the bounds' refusals in
        # (the total's first place went to the client registered above).
        assert statuses[201] == registrations_total - 1
        assert statuses[302] == 40 * 20
        assert statuses[429] == 40 * 3 - (registrations_total - 1) + 40 * 2
        # The second round added no rows and reused the first one's pages.
        assert sizes[1] <= sizes[0] + 64 * 1024
        # What the bounds allow: each row at most a few KiB, with indexes.
        most = (pending_cap + registrations_total) * 8 * 1024 + 256 * 1024
        assert sizes[1] < most, (sizes, most)


async def test_a_flood_of_new_addresses_does_not_lock_out_a_connector_in_use(
    tmp_path: Path,
) -> None:
    with oauth_server(tmp_path, registrations_total=3) as s:
        async with _from("127.0.6.1") as connector:
            got = await tokens_for(connector, s, DEMO_KEY)  # registration 1 of 3, then used
            flood = []
            for n in range(1, 6):
                async with _from(f"127.0.7.{n}") as stranger:
                    flood.append(await _register_status(stranger, s.base))
            assert flood == [201, 201, 429, 429, 429]
            async with _from("127.0.6.2") as newcomer:
                assert await _register_status(newcomer, s.base) == 429
            assert await _register_status(connector, s.base) == 201, "in use: not held"
            # Its grant ended: no longer in use, held to the total like any other.
            ended = await connector.post(
                s.base + "/revoke",
                data={"token": got["refresh_token"], "client_id": got["client_id"]},
            )
            assert ended.status_code == 200
            assert await _register_status(connector, s.base) == 429
