"""Client metadata documents and registration limits, on their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tradavity_mcp.sandbox import serve_in_thread
from tradavity_mcp.server.oauth.clients import ClientDocuments, RateLimit, redirect_allowed

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
