"""The README tells the truth: its tables match the server, its commands match CI."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from .kit import FAST_RETRY

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def _section(name: str) -> list[str]:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", README, re.S)
    assert match, f"README has no {name} section"
    rows = [line for line in match.group(1).splitlines() if line.startswith("| `")]
    return [line.split("|")[1].strip().strip("`") for line in rows]


def _offline(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("offline")


async def test_tables_match_the_server(tmp_path: Path) -> None:
    settings = Settings.load(environ={"TRADAVITY_API_KEY": "tvty_" + "0" * 48}, state_dir=tmp_path)
    # Offline, and quick to say so (the scopes' check gives up at once, not after retries).
    server = build_server(settings, transport=httpx2.MockTransport(_offline), retry=FAST_RETRY)
    async with Client(server, mode="legacy") as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        resources += [
            r.uri_template for r in (await client.list_resource_templates()).resource_templates
        ]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
    assert _section("tools") == tools
    assert sorted(_section("resources")) == sorted(resources)
    assert sorted(_section("prompts")) == sorted(prompts)


def test_ci_runs_the_readme_test_command() -> None:
    start = README.index("## Quick start")
    quick = README[start : README.index("\n## ", start + 1)]
    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)\n```", quick, re.S)
        for line in block.splitlines()
    ]
    assert "./dev demo" in commands
    assert "./dev test" in commands
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    assert "./dev test" in ci
    # The fresh-clone step runs the Quick start's ./dev lines as written, from the README.
    quickstart = (ROOT / ".ci" / "quickstart").read_text("utf-8")
    assert "sed -n '/^## Quick start/,/^## /p' README.md | grep '^\\./dev '" in quickstart
    assert "bash .ci/quickstart" in ci


def test_registry_marker_and_version() -> None:
    import json

    import tradavity_mcp

    server_json = json.loads((ROOT / "server.json").read_text("utf-8"))
    assert f"<!-- mcp-name: {server_json['name']} -->" in README
    assert server_json["version"] == tradavity_mcp.__version__
    assert all(p["version"] == tradavity_mcp.__version__ for p in server_json["packages"])
    manifest = json.loads((ROOT / "mcpb" / "manifest.json").read_text("utf-8"))
    assert manifest["version"] == tradavity_mcp.__version__
    # pyproject.toml takes the version from the package, not a copy of its own.
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r"^version\s*=", pyproject, re.M)
    assert f"## [{tradavity_mcp.__version__}]" in (ROOT / "CHANGELOG.md").read_text("utf-8")


def test_desktop_extension_manifest() -> None:
    import json

    manifest = json.loads((ROOT / "mcpb" / "manifest.json").read_text("utf-8"))
    assert [t["name"] for t in manifest["tools"]] == _section("tools")
    options = manifest["user_config"]
    assert options["api_key"]["sensitive"] is True
    assert options["sandbox"]["type"] == "boolean"
    assert options["screenshot_folders"] == {
        **options["screenshot_folders"],
        "type": "directory",
        "multiple": True,
    }
    config = manifest["server"]["mcp_config"]
    assert config["env"]["TRADAVITY_API_KEY"] == "${user_config.api_key}"
    assert config["env"]["TRADAVITY_SANDBOX"] == "${user_config.sandbox}"
    # A folder list expands to separate arguments only as the last, whole argument.
    assert config["args"][-2:] == ["--allowed-dir", "${user_config.screenshot_folders}"]
    # Installed from the lock mcpb/build resolves (`uv run --frozen`), with an icon it draws.
    assert config["args"][:5] == ["run", "--directory", "${__dirname}", "--quiet", "--frozen"]
    assert "uv" in (ROOT / "mcpb" / "build").read_text("utf-8").split("lock", 1)[0]
    assert manifest["icon"] == "icon.png"


def test_the_extension_icon_is_drawn(tmp_path: Path) -> None:
    import subprocess
    import sys

    from PIL import Image

    out = tmp_path / "icon.png"
    subprocess.run([sys.executable, str(ROOT / "mcpb" / "icon.py"), str(out)], check=True)
    with Image.open(out) as icon:
        assert (icon.format, icon.size) == ("PNG", (512, 512))
        colours = icon.convert("RGB").getcolors(maxcolors=512 * 512)
        assert colours is not None
        assert len(colours) > 4  # a picture, not a blank square
