"""Client metadata documents and registration limits, on their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tradavity_mcp.sandbox import serve_in_thread
from tradavity_mcp.server.auth import CLIENT_ADDRESS
from tradavity_mcp.server.oauth.clients import (
    DOCUMENT_TTL_SECONDS,
    ClientDocuments,
    RateLimit,
    redirect_allowed,
)

pytestmark = pytest.mark.anyio

HOSTS = ("claude.ai", "claude.com", "chatgpt.com")


def test_redirects_allowed_for_registration() -> None:
    assert redirect_allowed("https://claude.ai/api/mcp/auth_callback", HOSTS)
    assert redirect_allowed("https://chatgpt.com/connector_platform_oauth_redirect", HOSTS)
    assert redirect_allowed("http://127.0.0.1:33418/callback", HOSTS)
    assert redirect_allowed("http://localhost:6274/oauth/callback", HOSTS)
    assert redirect_allowed("http://[::1]:8080/cb", HOSTS)
    for bad in (
        "http://claude.ai/callback",  # not https
        "https://claude.ai.evil.example/cb",
        "https://evil.example/cb?x=claude.ai",
        "https://user@claude.ai/cb",
        "https://claude.ai/cb#frag",
        "http://10.0.0.1/cb",
        "javascript:alert(1)",
    ):
        assert not redirect_allowed(bad, HOSTS), bad


def _docs(routes: dict[str, Any]) -> Starlette:
    def make(body: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if callable(body):
                result: Response = body(request)
                return result
            return JSONResponse(body)

        return endpoint

    return Starlette(routes=[Route(path, make(body)) for path, body in routes.items()])


@pytest.fixture
def doc_server() -> Iterator[str]:
    def good(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "client_name": "Good",
                "redirect_uris": ["https://app.example/cb"],
            }
        )

    def big(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "redirect_uris": ["https://app.example/cb"],
                "pad": "x" * 20_000,
            }
        )

    def secret(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "client_secret_post",
            }
        )

    def plain_http_redirect(request: Request) -> Response:
        return JSONResponse(
            {"client_id": str(request.url), "redirect_uris": ["http://app.example/cb"]}
        )

    app = _docs(
        {
            "/good.json": good,
            "/big.json": big,
            "/secret.json": secret,
            "/http-redirect.json": plain_http_redirect,
            "/other-id.json": {
                "client_id": "https://else.example/c.json",
                "redirect_uris": ["https://a.example/cb"],
            },
            "/moved.json": lambda r: RedirectResponse("/good.json"),
            # Any number of distinct documents, as a flood of client ids would name.
            "/many/{n}.json": good,
        }
    )
    with serve_in_thread(app, path="") as base:
        yield base


async def test_documents_fetched_once_and_checked(doc_server: str) -> None:
    docs = ClientDocuments(allow_loopback_http=True)
    good = await docs.get(doc_server + "/good.json")
    assert good is not None
    assert good.client_name == "Good"
    assert good.token_endpoint_auth_method == "none"
    assert [str(u) for u in good.redirect_uris or []] == ["https://app.example/cb"]
    await docs.get(doc_server + "/good.json")
    assert docs.fetches == 1, "cached"
    for path, reason in (
        ("/big.json", "too large"),
        ("/secret.json", "client secret"),
        ("/http-redirect.json", "neither https nor loopback"),
        ("/other-id.json", "not its own URL"),
        ("/moved.json", "HTTP 307"),
        ("/missing.json", "HTTP 404"),
    ):
        client, why = await docs.lookup(doc_server + path)
        assert client is None, path
        assert reason in why, (path, why)


async def test_documents_refused_before_any_fetch() -> None:
    docs = ClientDocuments()
    for url, reason in (
        ("http://app.example/client.json", "https"),
        ("https://10.1.2.3/client.json", "non-public"),
        ("https://192.168.0.10/client.json", "non-public"),
        ("https://169.254.169.254/latest/meta-data", "non-public"),
        ("https://100.64.0.1/client.json", "non-public"),
        ("https://[fe80::1]/client.json", "non-public"),
        ("https://[::ffff:10.0.0.1]/client.json", "non-public"),
        ("https://127.0.0.1/client.json", "non-public"),
        ("https://app.example/", "path"),
    ):
        client, why = await docs.lookup(url)
        assert client is None, url
        assert reason in why, (url, why)
    assert docs.fetches == 0


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"] if host == "sneaky.example" else ["93.184.215.14"]

    docs = ClientDocuments(resolve=resolve)
    client, why = await docs.lookup("https://sneaky.example/client.json")
    assert client is None
    assert "non-public" in why
    assert docs.fetches == 0


def test_rate_limit_per_address_and_in_all() -> None:
    now = [0.0]
    limit = RateLimit(per_address=2, total=3, window=60.0, clock=lambda: now[0])
    assert limit.allow("a")
    assert limit.allow("a")
    assert not limit.allow("a")
    assert limit.allow("b")
    assert not limit.allow("c"), "the total is spent"
    now[0] = 61.0
    assert limit.allow("a")


#: IPv6 addresses carrying a private or loopback IPv4 address, which a connection to them
#: may reach: IPv4-mapped (two spellings), NAT64 (RFC 6052), 6to4, IPv4-compatible,
#: IPv4-translated, Teredo (client 127.0.0.1), NAT64 for local use (RFC 8215).
EMBEDDED = (
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "2002:c0a8:0101::",
    "::127.0.0.1",
    "::ffff:0:a00:1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "64:ff9b:1::5db8:d70e",
)
#: 127.0.0.1 and 10.0.0.1 as resolvers also read them: decimal, octal, hex, short.
ODD_IPV4 = ("2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "012.1", "167772161")


async def test_embedded_private_ipv4_forms_are_refused() -> None:
    """As the client id's host, with the server's own resolver: no DNS is asked."""
    docs = ClientDocuments()
    for address in EMBEDDED:
        client, why = await docs.lookup(f"https://[{address}]/client.json")
        assert client is None, address
        assert "non-public" in why, (address, why)
    for host in ODD_IPV4:
        client, why = await docs.lookup(f"https://{host}/client.json")
        assert client is None, host
        assert "spelled unusually" in why, (host, why)
    assert docs.fetches == 0


async def test_a_name_resolving_to_an_embedded_private_address_is_refused() -> None:
    """The same forms as a name's DNS answer (an AAAA record may hold any of them)."""
    answers = {f"n{i}.example": ["93.184.215.14", a] for i, a in enumerate(EMBEDDED)}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    docs = ClientDocuments(resolve=resolve)
    for host, (_, address) in answers.items():
        client, why = await docs.lookup(f"https://{host}/client.json")
        assert client is None, host
        assert why == f"{host} resolves to a non-public address ({address})"
    assert docs.fetches == 0


async def test_slow_name_resolution_is_given_up() -> None:
    resolving = []

    async def resolve(host: str, port: int) -> list[str]:
        resolving.append(host)
        await anyio.sleep(3600)  # a resolver that never answers
        return []

    docs = ClientDocuments(resolve=resolve)
    started = time.monotonic()
    client, why = await docs.lookup("https://slow.example/client.json")
    took = time.monotonic() - started
    assert client is None
    assert why == "slow.example did not resolve within 2 seconds"
    assert resolving == ["slow.example"]
    assert took < 30, "given up, not waited for"
    assert docs.fetches == 0


async def test_fetches_are_limited_per_address_and_in_all(doc_server: str) -> None:
    now, budget_now = [0.0], [0.0]  # the cache's clock, the budget's
    docs = ClientDocuments(
        allow_loopback_http=True,
        clock=lambda: now[0],
        limit=RateLimit(per_address=3, total=5, window=60.0, clock=lambda: budget_now[0]),
    )

    async def lookup_from(address: str, n: int) -> tuple[bool, str]:
        token = CLIENT_ADDRESS.set(address)
        try:
            client, why = await docs.lookup(f"{doc_server}/many/{n}.json")
        finally:
            CLIENT_ADDRESS.reset(token)
        return client is not None, why

    assert [await lookup_from("a", n) for n in range(3)] == [(True, "")] * 3
    busy = await lookup_from("a", 3)
    assert busy == (
        False,
        "too many client metadata documents were fetched in the last minute; try again in a minute",
    )
    assert [(await lookup_from("b", n))[0] for n in range(10, 13)] == [True, True, False]
    assert docs.fetches == 5
    # Cached documents cost nothing; once stale, over budget, they are used on.
    assert (await lookup_from("c", 0))[0] is True
    now[0] = DOCUMENT_TTL_SECONDS + 1
    assert (await lookup_from("c", 1))[0] is True, "known: used on"
    assert (await lookup_from("c", 20))[0] is False, "never fetched: refused"
    assert docs.fetches == 5
    # A refusal for the budget is not remembered: a minute later it is fetched.
    budget_now[0] = 61.0
    assert (await lookup_from("c", 20))[0] is True
    assert docs.fetches == 6


def test_rate_limit_outside_the_total_and_without_one() -> None:
    limit = RateLimit(per_address=2, total=1, window=60.0, clock=lambda: 0.0)
    assert limit.allow("a")
    assert not limit.allow("b"), "the total is spent"
    assert limit.allow("b", overall=False), "not held to the total"
    assert limit.allow("b", overall=False)
    assert not limit.allow("b", overall=False), "still held to its own"
    endless = RateLimit(per_address=1, total=None, window=60.0, clock=lambda: 0.0)
    assert [endless.allow(str(n)) for n in range(100)] == [True] * 100
    assert not endless.allow("0")


def test_a_withdrawn_admission_counts_no_more() -> None:
    limit = RateLimit(per_address=2, total=3, window=60.0, clock=lambda: 0.0)
    assert limit.allow("a", "t1")
    assert limit.allow("a", "t2")
    assert not limit.allow("a", "t3")
    limit.take_back("a", "t1")
    assert limit.allow("a", "t4")
    assert limit.allow("b", "t5")
    assert not limit.allow("c", "t6"), "the total is spent: t2, t4, t5"
    limit.take_back("b", "t5")
    assert limit.allow("c", "t7")
    limit.take_back("a", "")  # an admission without a ticket cannot be withdrawn
    assert not limit.allow("a", "t8")
    per_request = RateLimit(per_address=1, total=None, window=60.0)
    assert all(per_request.allow(f"request {n}", "t") for n in range(100))  # no total
