"""Start-up does only what `initialize` needs: the tools and resources (and the modules
behind them) load on first use, and everything still works from the first request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.server.deferred import registered
from tradavity_mcp.settings import Settings

from ..kit import data_of, png_bytes, text_of

pytestmark = pytest.mark.anyio

#: Modules a stdio server must not load before its first tools or resources request.
LATER = (
    "tradavity_mcp.server.tools",
    "tradavity_mcp.server.resources",
    "tradavity_mcp.server.writes.journal",
    "tradavity_mcp.server.writes.args",
    "tradavity_mcp.server.http",
    "tradavity_mcp.server.oauth",
    "PIL",
    "tomllib",
    "platformdirs",  # the probe names its state directory
)

PROBE = """
import json, sys
import anyio
from mcp import Client
from pydantic import BaseModel
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

def unbuilt() -> list[str]:
    names = []
    for module in ("tradavity_mcp.api.models", "tradavity_mcp.server.writes.args"):
        for value in vars(sys.modules[module]).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                if value.__module__ == module and not value.__pydantic_complete__:
                    names.append(value.__name__)
    return names

async def main() -> None:
    settings = Settings.load(api_key="tvty_" + "0123456789abcdef" * 3, state_dir=sys.argv[1])
    async with Client(build_server(settings), mode="legacy"):  # initialize answered
        ours = ("tradavity_mcp", "PIL", "tomllib", "platformdirs")
        loaded = sorted(m for m in sys.modules if m.startswith(ours))
        with anyio.move_on_after(20):  # then, unasked, the models are built
            while "tradavity_mcp.server.writes.args" not in sys.modules or unbuilt():
                await anyio.sleep(0.05)
        later = unbuilt() if "tradavity_mcp.server.writes.args" in sys.modules else ["args"]
    print(json.dumps({"loaded": loaded, "unbuilt_later": later}))

anyio.run(main)
"""


def test_a_server_that_answered_initialize_has_not_loaded_the_tools_modules(tmp_path: Path) -> None:
    """Nothing of the tools is loaded when `initialize` is answered; soon after, unasked,
    the API's and the journaling tools' models are built, before the first call needs
    them."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    probe = json.loads(out.stdout)
    loaded = set(probe["loaded"])
    assert "tradavity_mcp.server.app" in loaded
    early = sorted(m for m in loaded if m.startswith(LATER))
    assert early == []
    assert probe["unbuilt_later"] == []


async def test_tools_and_resources_are_added_on_first_use_and_work(tmp_path: Path) -> None:
    settings = Settings.load(api_key=DEMO_KEY, state_dir=tmp_path, environ={})
    server = build_server(settings, transport=SandboxTransport(create_app(SandboxConfig())))
    assert not registered(server)
    async with Client(server) as client:
        assert not registered(server)  # initialize built none of them
        tools = await client.list_tools()
        assert registered(server)
        assert len(tools.tools) == 17
        resources = await client.list_resources()
        assert any(r.uri.startswith("tradavity://") for r in resources.resources)


async def test_the_first_request_may_be_a_resource_read(tmp_path: Path) -> None:
    settings = Settings.load(api_key=DEMO_KEY, state_dir=tmp_path, environ={})
    server = build_server(settings, transport=SandboxTransport(create_app(SandboxConfig())))
    async with Client(server) as client:
        result = await client.read_resource("tradavity://sync/status")
        assert result.contents
        assert registered(server)


async def test_the_first_request_may_be_a_prompt(tmp_path: Path) -> None:
    settings = Settings.load(api_key=DEMO_KEY, state_dir=tmp_path, environ={})
    server = build_server(settings, transport=SandboxTransport(create_app(SandboxConfig())))
    async with Client(server) as client:
        prompt = await client.get_prompt("pre_trade_check", {"symbol": "MNQ", "direction": "long"})
        assert prompt.messages
        assert registered(server)
        assert len((await client.list_prompts()).prompts) == 4


async def test_servers_of_one_process_share_built_tools_but_each_runs_its_own(
    tmp_path: Path,
) -> None:
    """Tools are built once per process; a journaling tool still runs with its own
    server's settings (here the directories screenshots may be read from)."""
    app = create_app(SandboxConfig())
    charts = {name: tmp_path / name for name in ("a", "b")}
    servers = {}
    for name, folder in charts.items():
        folder.mkdir()
        (folder / "chart.png").write_bytes(png_bytes())
        settings = Settings.load(
            api_key=DEMO_KEY,
            state_dir=tmp_path / f"state-{name}",
            allowed_dirs=[str(folder)],
            environ={},
        )
        servers[name] = build_server(settings, transport=SandboxTransport(app))
    async with Client(servers["a"]) as a, Client(servers["b"]) as b:
        await a.list_tools()
        await b.list_tools()
        tool_a = servers["a"]._tool_manager.get_tool("attach_screenshot")
        tool_b = servers["b"]._tool_manager.get_tool("attach_screenshot")
        assert tool_a is not None
        assert tool_b is not None
        assert tool_a.fn_metadata is tool_b.fn_metadata  # built once
        assert tool_a.fn is not tool_b.fn
        trade: dict[str, Any] = {"symbol": "MES", "direction": "long", "net_pnl": 12.5}
        trade |= {"trade_date": "2026-11-18T15:00:00Z", "account": "Apex 50K"}
        number = data_of(await b.call_tool("create_trade", trade))["trade_number"]
        for client, own, other in ((a, "a", "b"), (b, "b", "a")):
            mine = {"trade_number": number, "path": str(charts[own] / "chart.png")}
            assert data_of(await client.call_tool("attach_screenshot", mine))["screenshot_id"]
            theirs = {"trade_number": number, "path": str(charts[other] / "chart.png")}
            refused = await client.call_tool("attach_screenshot", theirs)
            assert refused.is_error
            assert "outside the allowed directories" in text_of(refused)
