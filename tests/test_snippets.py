"""`tradavity-mcp config <client>` snippets: each in its client's documented format
(checked against an example from that client's documentation, `fixtures/clients/`),
with the screenshot folder, and never with a real key."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tradavity_mcp.snippets import CLIENTS, KEY_PLACEHOLDER, screenshot_folder, snippet

FIXTURES = Path(__file__).parent / "fixtures" / "clients"
#: The file each client's documented example is in.
FIXTURE = {
    "claude-code": "claude-code.txt",
    "codex": "codex.toml",
    "goose": "goose.yaml",
    **{c: f"{c}.json" for c in CLIENTS if c not in {"claude-code", "codex", "goose"}},
}


def _yaml(text: str) -> dict[str, Any]:
    """The YAML these configs use: block mappings by indentation, each value a plain
    scalar or a flow list/map (as Goose's documentation writes them)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key] = _flow(value.strip())
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


def _flow(value: str) -> Any:
    """A YAML flow value as JSON: plain words quoted, then read as JSON."""
    token = r'"(?:[^"\\]|\\.)*"|[\[\]{},:]|[^\s\[\]{},:"]+'

    def quoted(word: str) -> str:
        if word[0] in '"[]{},:' or word in {"true", "false"} or re.fullmatch(r"-?\d+", word):
            return word
        return json.dumps(word)

    return json.loads(" ".join(quoted(w) for w in re.findall(token, value)))


def _load(client: str, text: str) -> Any:
    kind = FIXTURE[client].rsplit(".", 1)[1]
    if kind == "json":
        return json.loads(text)
    if kind == "toml":
        return tomllib.loads(text)
    if kind == "yaml":
        return _yaml(text)
    return shlex.split(text)


def _servers(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where the servers are (the one key holding a map of named servers), and the map."""
    for key in ("mcpServers", "servers", "context_servers", "mcp_servers", "extensions"):
        if key in doc:
            return key, doc[key]
    raise AssertionError(f"no servers in {sorted(doc)}")


def _check_command(parts: list[str], documented: list[str]) -> list[str]:
    """`claude mcp add`: the documented words first, only documented options, `--`, then
    the command; what follows `--`."""
    assert parts[:3] == documented[:3] == ["claude", "mcp", "add"]
    options = {w for w in documented[3 : documented.index("--")] if w.startswith("--")}
    ours = parts[3 : parts.index("--")]
    assert {w for w in ours if w.startswith("-")} <= options, ours
    return parts[parts.index("--") + 1 :]


@pytest.mark.parametrize("client", CLIENTS)
def test_each_snippet_has_its_clients_documented_shape(client: str) -> None:
    text = snippet(client)
    documented = _load(client, (FIXTURES / FIXTURE[client]).read_text("utf-8"))
    ours = _load(client, text)
    folder = str(screenshot_folder())
    if client == "claude-code":
        command = _check_command(ours, documented)
        assert command[-2:] == ["--allowed-dir", folder]
        assert f"TRADAVITY_API_KEY={KEY_PLACEHOLDER}" in ours
    else:
        where, servers = _servers(documented)
        assert _servers(ours)[0] == where
        assert set(ours) <= set(documented), "top-level keys the documentation uses"
        example = next(iter(servers.values()))
        entry = ours[where]["tradavity"]
        assert set(ours[where]) == {"tradavity"}
        for key, value in entry.items():
            assert key in example, f"{client}: {key!r} is not in the documented example"
            assert type(value) is type(example[key]), (client, key, value)
        run = entry.get("args", [])
        assert run[-2:] == ["--allowed-dir", folder], run
        env = entry.get("env", entry.get("envs", {}))
        assert env.get("TRADAVITY_API_KEY") in {KEY_PLACEHOLDER, "${input:tradavity-api-key}"}
    assert "tvty_" not in text.replace(KEY_PLACEHOLDER, "")


def test_the_screenshot_folder_is_the_platforms_usual_one() -> None:
    home = Path("/home/dana")
    assert screenshot_folder("darwin", home) == home / "Desktop"
    assert screenshot_folder("win32", home) == home / "Pictures" / "Screenshots"
    assert screenshot_folder("linux", home) == home / "Pictures" / "Screenshots"


def test_sandbox_snippets_need_no_key() -> None:
    desktop = json.loads(snippet("claude-desktop", sandbox=True))
    server = desktop["mcpServers"]["tradavity"]
    assert server["args"][-1] == "--sandbox"
    assert "env" not in server
    vscode = json.loads(snippet("vscode", uvx=True))
    assert vscode["servers"]["tradavity"]["command"] == "uvx"
    assert vscode["inputs"][0]["password"] is True
    codex = tomllib.loads(snippet("codex", sandbox=True))
    assert "env" not in codex["mcp_servers"]["tradavity"]


def test_config_prints_the_snippet_with_a_chosen_folder(tmp_path: Path) -> None:
    """As a person runs it: the folder they name is the one the server may read."""
    done = subprocess.run(
        [sys.executable, "-m", "tradavity_mcp", "config", "cursor", "--screenshots", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    args = json.loads(done.stdout)["mcpServers"]["tradavity"]["args"]
    assert args[-2:] == ["--allowed-dir", str(tmp_path)]
