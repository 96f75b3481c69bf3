"""A host for our MCP Apps in a real browser.

Debian's chromium, headless, driven by Playwright with the system browser (one for the
package). The page is served by the test (`http://host.test/`, from Playwright's router,
so nothing else can answer) and runs the host side of MCP Apps with the official
`@modelcontextprotocol/ext-apps` bridge, bundled from `apps/node_modules` by esbuild when
the tests start (`./dev test` runs `npm ci --prefix apps` first). The host's tools/call
goes to our real server on the sandbox through the SDK's in-process client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import CallToolResult
from playwright.async_api import Browser, Page, Route

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import DEMO_KEY, ManualClock, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import NOW, SANDBOX_URL, SandboxTime, chromium

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"
NODE_MODULES = APPS / "node_modules"
SCREENSHOTS = Path(__file__).parent / "screenshots"
HOST = "http://host.test"
#: What a host that renders Apps tells the server in `initialize`.
APPS_CAPABLE = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
HOST_CONTEXT: dict[str, Any] = {
    "theme": "light",
    "locale": "en-US",
    "timeZone": "America/New_York",
    "displayMode": "inline",
    "availableDisplayModes": ["inline"],
    "platform": "web",
    "containerDimensions": {"width": 760, "maxHeight": 500},
}


def node() -> str:
    found = shutil.which("node")
    assert found, "the Apps tests need Node.js (./dev test installs it with the apps' packages)"
    assert NODE_MODULES.is_dir(), "apps/node_modules is missing: npm ci --prefix apps"
    return found


def run_node(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), *args],
        cwd=APPS,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def host_page() -> str:
    """The host page, with the ext-apps bridge bundled in."""
    built = run_node(
        "--input-type=module",
        "-e",
        "import { build } from 'esbuild';"
        "const [entry] = process.argv.slice(1);"
        "const out = await build({entryPoints: [entry], bundle: true, format: 'iife',"
        " write: false, logLevel: 'warning', nodePaths: [process.cwd() + '/node_modules']});"
        "process.stdout.write(out.outputFiles[0].text);",
        str(Path(__file__).parent / "host.js"),
    )
    assert built.returncode == 0, built.stderr
    script = built.stdout.replace("</script", "<\\/script")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>host</title>'
        f"</head><body><script>{script}</script></body></html>"
    )


@pytest.fixture(scope="package")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    """One browser for the package's tests (xdist keeps them on one worker: see
    `pytest_xdist_make_scheduler` in tests/conftest.py); each test opens its own page."""
    async with chromium() as launched:
        yield launched


@dataclass
class World:
    """One test's sandbox, a verifying API client, and our server's settings."""

    app: Any
    clock: ManualClock
    settings: Settings
    api: TradavityClient

    def client(self, **kwargs: Any) -> Client:
        """A client of our server that renders Apps (as Claude or VS Code would)."""
        server = build_server(
            self.settings, transport=SandboxTransport(self.app), clock=SandboxTime(self.clock)
        )
        kwargs.setdefault("extensions", [APPS_CAPABLE])
        return Client(server, **kwargs)


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """The sandbox's demo journal; `indirect` parametrization gives its days of history."""
    clock = ManualClock(NOW)
    config = SandboxConfig(db=":memory:", clock=clock)
    days = getattr(request, "param", None)
    if isinstance(days, int):
        config.demo_days = days
    app = create_app(config)
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY},
        base_url=SANDBOX_URL,
        state_dir=tmp_path / "state",
    )
    async with TradavityClient(
        DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
    ) as api:
        yield World(app=app, clock=clock, settings=settings, api=api)


def dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


@dataclass
class Host:
    """A page of the host, connected to our server through `client`."""

    page: Page
    client: Client
    #: Every request the page or a view tried outside the host's own origin.
    outside: list[str] = field(default_factory=list)
    #: What the host tells the view about itself (locale, time zone, theme, size).
    context: dict[str, Any] = field(default_factory=lambda: dict(HOST_CONTEXT))

    async def open(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call `tool` as a model would, and show its result in the tool's view."""
        result = await self.client.call_tool(tool, arguments)
        await self.show(tool, arguments, result)
        return result

    async def show(self, tool: str, arguments: dict[str, Any], result: CallToolResult) -> None:
        """Show a result in its tool's view (again: as a host does on a reload)."""
        listed = {t.name: t for t in (await self.client.list_tools()).tools}
        uri = (listed[tool].meta or {})["ui"]["resourceUri"]
        resource = (await self.client.read_resource(uri)).contents[0]
        assert resource.mime_type == APP_MIME_TYPE
        html = getattr(resource, "text", "")
        csp = (resource.meta or {}).get("ui", {}).get("csp")
        await self.page.evaluate(
            "(app) => window.openApp(app)",
            {
                "html": html,
                "csp": csp,
                "toolInput": arguments,
                "toolResult": dump(result),
                "hostContext": self.context,
            },
        )

    def view(self) -> Any:
        """The view's document (the iframe)."""
        return self.page.frame_locator("iframe")

    async def log(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = await self.page.evaluate("window.hostLog")
        return value

    async def tallest(self) -> int:
        """The greatest height the view asked for (`ui/notifications/size-changed`)."""
        heights = [int(e["height"]) for e in await self.log() if e["event"] == "size"]
        assert heights, "the view never reported its size"
        return max(heights)

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def host(browser: Browser, world: World, host_page: str) -> AsyncIterator[Host]:
    context = await browser.new_context(viewport={"width": 800, "height": 560})
    page = await context.new_page()
    async with world.client() as client:
        shown = Host(page=page, client=client)

        async def route(route: Route) -> None:
            url = route.request.url
            if url.rstrip("/") == HOST:
                await route.fulfill(status=200, content_type="text/html", body=host_page)
                return
            shown.outside.append(url)
            await route.abort()

        async def call_tool(params: dict[str, Any]) -> dict[str, Any]:
            meta = params.get("_meta")
            result = await client.call_tool(
                params["name"], params.get("arguments") or {}, meta=meta
            )
            return dump(result)

        await context.route("**/*", route)
        await page.expose_function("mcpCallTool", call_tool)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(HOST + "/")
        try:
            yield shown
        finally:
            await context.close()
        assert not errors, errors
        assert not shown.outside, f"a view reached outside the host: {shown.outside}"


def surface_json(tools: list[dict[str, Any]], resources: list[dict[str, Any]]) -> str:
    return json.dumps({"tools": tools, "resources": resources})


__all__ = ["HOST_CONTEXT", "Host", "World", "dump", "node", "run_node", "surface_json"]
