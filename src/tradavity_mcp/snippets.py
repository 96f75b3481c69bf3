"""`tradavity-mcp config <client>`: the snippet that adds this server to an MCP client.

Snippets never contain a real key: a placeholder to replace, or (VS Code) a prompt for
a secret input. `--sandbox` gives a snippet that runs on the built-in sandbox.

Each snippet lets the server read screenshots from the platform's usual screenshot
folder (`screenshot_folder`), as the desktop extension does, so "here's the chart" by
file path works even when the client sends no roots.

The formats follow each client's own documentation (a documented example of each is in
`tests/fixtures/clients/`, and the tests check every snippet against it):

| client | where it goes | shape |
|---|---|---|
| claude-desktop | `claude_desktop_config.json` | `mcpServers` |
| claude-code | a command to run | `claude mcp add NAME --env K=V -- CMD ARGS` |
| vscode | `.vscode/mcp.json` | `servers`, `inputs` |
| cursor | `~/.cursor/mcp.json` | `mcpServers` |
| windsurf | `~/.codeium/windsurf/mcp_config.json` | `mcpServers` |
| zed | Zed's `settings.json` | `context_servers` |
| codex | `~/.codex/config.toml` | `[mcp_servers.NAME]` (TOML) |
| gemini-cli | `~/.gemini/settings.json` | `mcpServers` |
| goose | `~/.config/goose/config.yaml` | `extensions` (YAML) |
| lm-studio | LM Studio's `mcp.json` | `mcpServers` |
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["CLIENTS", "KEY_PLACEHOLDER", "screenshot_folder", "snippet"]

#: The clients whose config is `{"mcpServers": {name: {command, args, env}}}`.
_MCP_SERVERS = ("claude-desktop", "cursor", "windsurf", "gemini-cli", "lm-studio")
CLIENTS = (
    "claude-desktop",
    "claude-code",
    "vscode",
    "cursor",
    "windsurf",
    "zed",
    "codex",
    "gemini-cli",
    "goose",
    "lm-studio",
)
KEY_PLACEHOLDER = "tvty_YOUR_KEY_HERE"
#: Where `uvx` takes the server from. The package is not on PyPI yet, so the repository;
#: at the first release this becomes `["tradavity-mcp"]`.
UVX_ARGS = ["--from", "git+https://github.com/tradavity/tradavity-mcp", "tradavity-mcp"]


def screenshot_folder(platform: str = sys.platform, home: Path | None = None) -> Path:
    """Where this platform saves screenshots by default: the Desktop on macOS (as the
    desktop extension's default), Pictures/Screenshots on Windows (Win+PrtScn, the
    Snipping Tool) and Linux (GNOME, KDE's Spectacle)."""
    home = home or Path.home()
    if platform == "darwin":
        return home / "Desktop"
    return home / "Pictures" / "Screenshots"


def _command(uvx: bool) -> tuple[str, list[str]]:
    if uvx:
        return "uvx", list(UVX_ARGS)
    installed = shutil.which("tradavity-mcp")
    if installed:
        return installed, []
    return sys.executable, ["-m", "tradavity_mcp"]


def snippet(
    client: str,
    *,
    sandbox: bool = False,
    uvx: bool = False,
    screenshots: Path | None = None,
) -> str:
    """The text to paste (or run) for `client`. `screenshots`: the folder the server may
    read charts from (default: the platform's usual one)."""
    command, args = _command(uvx)
    folder = screenshots if screenshots is not None else screenshot_folder()
    args = [*args, "--allowed-dir", str(folder)]
    if sandbox:
        args = [*args, "--sandbox"]
    env = {} if sandbox else {"TRADAVITY_API_KEY": KEY_PLACEHOLDER}
    if client in _MCP_SERVERS:
        server: dict[str, object] = {"command": command, "args": args}
        if env:
            server["env"] = env
        return json.dumps({"mcpServers": {"tradavity": server}}, indent=2)
    if client == "claude-code":
        options = [word for k, v in env.items() for word in ("--env", f"{k}={v}")]
        parts = ["claude", "mcp", "add", "tradavity", *options, "--", command, *args]
        return shlex.join(parts)
    if client == "vscode":
        entry: dict[str, object] = {"type": "stdio", "command": command, "args": args}
        doc: dict[str, object] = {"servers": {"tradavity": entry}}
        if not sandbox:
            entry["env"] = {"TRADAVITY_API_KEY": "${input:tradavity-api-key}"}
            doc["inputs"] = [
                {
                    "type": "promptString",
                    "id": "tradavity-api-key",
                    "description": "Tradavity API key (Settings -> API)",
                    "password": True,
                }
            ]
        return json.dumps(doc, indent=2)
    if client == "zed":
        zed: dict[str, object] = {"command": command, "args": args, "env": env}
        return json.dumps({"context_servers": {"tradavity": zed}}, indent=2)
    if client == "codex":
        lines = [
            "[mcp_servers.tradavity]",
            f"command = {json.dumps(command)}",
            f"args = {json.dumps(args)}",
        ]
        if env:
            pairs = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in env.items())
            lines.append(f"env = {{ {pairs} }}")
        return "\n".join(lines)
    if client == "goose":
        # YAML, each value in JSON's flow style (YAML reads JSON values as they are).
        lines = [
            "extensions:",
            "  tradavity:",
            "    name: Tradavity",
            f"    cmd: {json.dumps(command)}",
            f"    args: {json.dumps(args)}",
            "    enabled: true",
        ]
        if env:
            lines.append(f"    envs: {json.dumps(env)}")
        lines += ["    type: stdio", "    timeout: 300"]
        return "\n".join(lines)
    raise ValueError(f"unknown client {client!r}; one of {', '.join(CLIENTS)}")
