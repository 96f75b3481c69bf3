"""The one-time upload link, over real loopback HTTP: per-user keys and OAuth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, build_http_app, build_server
from tradavity_mcp.settings import Settings

from ..kit import (
    NOW,
    SANDBOX_URL,
    TLS,
    SandboxTime,
    chromium,
    data_of,
    http_transport,
    plain_trade,
    png_bytes,
    text_of,
)
from ..server.oauth.kit import free_port, oauth_server, tokens_for

pytestmark = pytest.mark.anyio


@dataclass
class Hosted:
    base: str
    sandbox: Any
    clock: ManualClock


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    """A per-user server on a loopback port, its public URL that port, on a manual clock."""
    clock = ManualClock(NOW)
    sandbox = create_app(SandboxConfig(db=":memory:", clock=clock))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings.load(
        environ={}, base_url=SANDBOX_URL, state_dir=tmp_path / "state", require_key=False
    )
    server = build_server(
        settings,
        transport=SandboxTransport(sandbox),
        stdio=False,
        hosted=HostedOptions(auth="per-user", public_url=base),
        clock=SandboxTime(clock),
    )
    app = build_http_app(server, kind="http", host="127.0.0.1")
    with serve_in_thread(app, port=port, path="", lifespan=True):
        yield Hosted(base=base, sandbox=sandbox, clock=clock)


def _api(sandbox: Any) -> TradavityClient:
    return TradavityClient(DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(sandbox))


async def _link_for(client: Client, pnl: float) -> tuple[int, str, str]:
    """A new trade, and attach_screenshot with no file: (trade, link, the result's text)."""
    trade = int(data_of(await client.call_tool("create_trade", plain_trade(pnl)))["trade_number"])
    result = await client.call_tool("attach_screenshot", {"trade_number": trade, "label": "Entry"})
    data = data_of(result)
    assert data["outcome"] == "pending", data
    return trade, str(data["upload_url"]), text_of(result)


def _png_form(content: bytes | None = None, name: str = "chart.png") -> dict[str, Any]:
    return {"file": (name, content if content is not None else png_bytes(), "image/png")}


async def _upload_once_then_refused(base: str, sandbox: Any, client: Client, public: str) -> None:
    trade, url, said = await _link_for(client, 21.0)
    assert url.startswith(public + "/upload/")
    assert url in said
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 40  # 256 random bits
    page_url = base + "/upload/" + token
    async with httpx2.AsyncClient(verify=TLS, timeout=30) as http, _api(sandbox) as api:
        page = await http.get(page_url)
        assert page.status_code == 200
        assert 'enctype="multipart/form-data"' in page.text
        assert f"trade #{trade}" in page.text
        for secret in (DEMO_KEY, DEMO_KEY[5:]):
            assert secret not in page.text
            assert secret not in url
        # Checked as the API checks: a text file named .png is refused, the link stays.
        wrong = await http.post(page_url, files=_png_form(b"not an image at all", "x.png"))
        assert wrong.status_code == 400
        assert "PNG" in wrong.text
        assert await api.list_screenshots(trade) == []
        sent = png_bytes((9, 99, 199))
        done = await http.post(page_url, files=_png_form(sent))
        assert done.status_code == 200, done.text
        assert f"attached to trade #{trade}" in done.text
        shots = await api.list_screenshots(trade)
        assert len(shots) == 1
        assert shots[0].label == "Entry"
        assert await api.download_screenshot(trade, shots[0].screenshot_id) == sent
        again = await http.post(page_url, files=_png_form(png_bytes((1, 1, 1))))
        assert again.status_code == 410
        assert "already used" in again.text
        assert (await http.get(page_url)).status_code == 410
        assert len(await api.list_screenshots(trade)) == 1
    # The call's result, read again: done, the file named.
    result = await client.call_tool("attach_screenshot", {"trade_number": trade, "label": "Entry"})
    data = data_of(result)
    assert data["outcome"] == "suspected_duplicate", data
    assert data["screenshot_id"] == shots[0].screenshot_id


async def test_per_user_link_attaches_once(hosted: Hosted) -> None:
    async with Client(http_transport(hosted.base, DEMO_KEY)) as client:
        await _upload_once_then_refused(hosted.base, hosted.sandbox, client, hosted.base)


async def test_expired_and_foreign_host_and_origin_are_refused(hosted: Hosted) -> None:
    async with Client(http_transport(hosted.base, DEMO_KEY)) as client:
        trade, url, _ = await _link_for(client, 5.0)
        async with httpx2.AsyncClient(verify=TLS, timeout=30) as http, _api(hosted.sandbox) as api:
            host = await http.post(url, files=_png_form(), headers={"Host": "evil.example"})
            assert host.status_code in (400, 421)
            origin = await http.post(
                url, files=_png_form(), headers={"Origin": "https://evil.example"}
            )
            assert origin.status_code == 403
            assert await api.list_screenshots(trade) == []
            hosted.clock.advance(16 * 60)
            late = await http.post(url, files=_png_form())
            assert late.status_code == 410
            assert "expired" in late.text
            assert await api.list_screenshots(trade) == []
        # Asked again, the tool makes a new link; the old one stays refused.
        result = await client.call_tool(
            "attach_screenshot", {"trade_number": trade, "label": "Entry"}
        )
        fresh = data_of(result)["upload_url"]
        assert fresh != url
        async with httpx2.AsyncClient(verify=TLS, timeout=30) as http:
            assert (await http.post(url, files=_png_form())).status_code == 410
        async with _api(hosted.sandbox) as api:
            assert await api.list_screenshots(trade) == []


async def test_oauth_link_attaches_once(tmp_path: Path) -> None:
    sandbox = create_app(SandboxConfig(db=":memory:"))
    with oauth_server(tmp_path, sandbox=sandbox) as served:
        async with httpx2.AsyncClient(verify=TLS, timeout=30) as http:
            access = (await tokens_for(http, served, DEMO_KEY))["access_token"]
        assert not re.search(r"tvty_", access)
        async with Client(http_transport(served.base, access)) as client:
            await _upload_once_then_refused(served.base, sandbox, client, served.base)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_the_page_in_chromium(hosted: Hosted, tmp_path: Path, javascript: bool) -> None:
    chart = tmp_path / "entry.png"
    chart.write_bytes(png_bytes((200, 100, 0)))
    async with Client(http_transport(hosted.base, DEMO_KEY)) as client:
        trade, url, _ = await _link_for(client, 7.5 if javascript else 8.5)
    async with chromium() as browser:
        context = await browser.new_context(java_script_enabled=javascript)
        page = await context.new_page()
        await page.goto(url)
        assert f"trade #{trade}" in await page.inner_text("h1")
        await page.set_input_files("#file", str(chart))
        if javascript:  # the preview shows the chosen image
            await page.wait_for_selector("#preview:not([hidden])", timeout=10_000)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#said", timeout=20_000)
        said = await page.inner_text("#said")
        assert f"attached to trade #{trade}" in said
        await context.close()
    async with _api(hosted.sandbox) as api:
        shots = await api.list_screenshots(trade)
        assert len(shots) == 1
        assert await api.download_screenshot(trade, shots[0].screenshot_id) == chart.read_bytes()


async def test_journal_trade_asks_for_its_chart_by_link(hosted: Hosted) -> None:
    args = {"trade": plain_trade(31.0), "screenshot": {"label": "Exit"}}
    async with Client(http_transport(hosted.base, DEMO_KEY)) as client:
        first = await client.call_tool("journal_trade", args)
        data = data_of(first)
        assert data["outcome"] == "pending", data
        url = str(data["upload_url"])
        assert url in text_of(first)
        async with httpx2.AsyncClient(verify=TLS, timeout=30) as http:
            done = await http.post(url, files=_png_form())
            assert done.status_code == 200, done.text
            assert f"attached to trade #{data['trade_number']}" in done.text
        again = data_of(await client.call_tool("journal_trade", args))
        number = int(again["trade_number"])
        assert number == data["trade_number"]
        assert again["steps"]["screenshot"] == "done: chart.png"
    async with _api(hosted.sandbox) as api:
        shots = await api.list_screenshots(number)
        assert [s.label for s in shots] == ["Exit"]
