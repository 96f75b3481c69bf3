"""The consent page in a real browser: Debian's chromium, headless, driven by
Playwright (system browser; `.ci/run` installs it). No JavaScript is needed by the page;
the browser only types and clicks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.async_api import Browser, BrowserContext, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tradavity_mcp.sandbox import DEMO_KEY, SECOND_PRO_KEY, serve_in_thread

from ..kit import TLS, chromium
from ..server.oauth.kit import (
    authorize_url,
    oauth_server,
    pkce,
    query_of,
    register,
    token,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_browser() -> AsyncIterator[Browser]:
    """One browser for the module."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def browser(shared_browser: Browser) -> AsyncIterator[BrowserContext]:
    """A context of its own for each test (no cookies or storage from another), with
    JavaScript off: the page must work without it."""
    context = await shared_browser.new_context(java_script_enabled=False)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def callback() -> Iterator[str]:
    """The client's redirect endpoint: a real loopback server."""

    async def landed(request: Request) -> Response:
        return PlainTextResponse("client callback")

    app = Starlette(routes=[Route("/callback", landed)])
    with serve_in_thread(app, path="") as base:
        yield base + "/callback"


async def _open_consent(page: Page, url: str) -> None:
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    assert await page.locator("input[type=password][name=api_key]").count() == 1


async def test_consent_in_chromium_lands_on_the_redirect_with_a_code(
    tmp_path: Path, browser: BrowserContext, callback: str
) -> None:
    with oauth_server(tmp_path) as served:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            client_id = (await register(http, served.base, callback))["client_id"]
            verifier, challenge = pkce()
            page = await browser.new_page()
            url = authorize_url(served, client_id, challenge, state="s-123", redirect=callback)
            await _open_consent(page, url)
            assert "Test assistant" in await page.content()
            await page.fill("input[name=api_key]", DEMO_KEY)
            await page.click("button[value=check]")
            assert "read:trades" in await page.content()
            assert "Find trades" in await page.content()
            # What Allow grants, repeated: the client, where it returns, whose journal.
            granted = await page.locator("dl.grant").inner_text()
            for shown in ("Test assistant", urlsplit(callback).netloc, "dana@example.com"):
                assert shown in granted
            async with page.expect_navigation(url=callback + "**"):
                await page.click("button[value=approve]")
            landed = query_of(page.url)
            assert page.url.startswith(callback + "?")
            assert "client callback" in await page.content()
            assert landed["state"] == "s-123"
            assert DEMO_KEY not in page.url
            exchanged = await token(
                http,
                served.base,
                grant_type="authorization_code",
                code=landed["code"],
                redirect_uri=callback,
                client_id=client_id,
                code_verifier=verifier,
            )
            assert exchanged.status_code == 200, exchanged.text


async def test_a_request_answered_in_one_browser_cannot_be_allowed_from_another(
    tmp_path: Path, shared_browser: Browser, browser: BrowserContext, callback: str
) -> None:
    """Two browsers (contexts: separate cookies) on one consent link: the one that
    checked a key allows; the other sees a plain page without the form."""
    other = await shared_browser.new_context(java_script_enabled=False)
    try:
        with oauth_server(tmp_path) as served:
            async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
                client_id = (await register(http, served.base, callback))["client_id"]
                verifier, challenge = pkce()
                start = await http.get(
                    authorize_url(served, client_id, challenge, redirect=callback)
                )
                link = start.headers["location"]
                users = await browser.new_page()
                await _open_consent(users, link)
                senders = await other.new_page()
                await _open_consent(senders, link)
                await users.fill("input[name=api_key]", DEMO_KEY)
                await users.click("button[value=check]")
                assert await users.locator("button[value=approve]").count() == 1
                # The other browser's page, sent as it stood: refused, nothing to click.
                await senders.fill("input[name=api_key]", SECOND_PRO_KEY)
                await senders.click("button[value=check]")
                assert "Answered in another browser" in await senders.content()
                assert await senders.locator("form").count() == 0
                assert senders.url.startswith(served.base + "/consent")
                async with users.expect_navigation(url=callback + "**"):
                    await users.click("button[value=approve]")
                exchanged = await token(
                    http,
                    served.base,
                    grant_type="authorization_code",
                    code=query_of(users.url)["code"],
                    redirect_uri=callback,
                    client_id=client_id,
                    code_verifier=verifier,
                )
                assert exchanged.status_code == 200, exchanged.text
    finally:
        await other.close()


async def test_a_wrong_key_shows_the_error_on_the_page(
    tmp_path: Path, browser: BrowserContext
) -> None:
    wrong = "tvty_" + "9" * 48
    with oauth_server(tmp_path) as served:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            client_id = (await register(http, served.base))["client_id"]
            page = await browser.new_page()
            await _open_consent(page, authorize_url(served, client_id, pkce()[1]))
            await page.fill("input[name=api_key]", wrong)
            await page.click("button[value=check]")
            alert = page.locator("[role=alert]")
            assert "Tradavity refused this key" in await alert.inner_text()
            assert page.url.startswith(served.base + "/consent")
            assert "code=" not in page.url
            assert wrong[5:] not in await page.content()
            assert await page.locator("button[value=approve]").count() == 0
