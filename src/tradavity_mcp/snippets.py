"""`tradavity-mcp config <client>`: the snippet that adds this server to an MCP client.

Snippets never contain a real key: a placeholder to replace, or (VS Code) a prompt for
a secret input. `--sandbox` gives a snippet that runs on the built-in sandbox.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys

__all__ = ["CLIENTS", "KEY_PLACEHOLDER", "snippet"]

CLIENTS = ("claude-desktop", "claude-code", "vscode")
KEY_PLACEHOLDER = "tvty_YOUR_KEY_HERE"
#: Where `uvx` takes the server from. The package is not on PyPI yet, so the repository;
#: at the first release this becomes `["tradavity-mcp"]`.
UVX_ARGS = ["--from", "git+https://github.com/tradavity/tradavity-mcp", "tradavity-mcp"]


def _command(uvx: bool) -> tuple[str, list[str]]:
    if uvx:
        return "uvx", list(UVX_ARGS)
    installed = shutil.which("tradavity-mcp")
    if installed:
        return installed, []
    return sys.executable, ["-m", "tradavity_mcp"]


def snippet(client: str, *, sandbox: bool = False, uvx: bool = False) -> str:
    command, args = _command(uvx)
    if sandbox:
        args = [*args, "--sandbox"]
    if client == "claude-desktop":
        server: dict[str, object] = {"command": command, "args": args}
        if not sandbox:
            server["env"] = {"TRADAVITY_API_KEY": KEY_PLACEHOLDER}
        return json.dumps({"mcpServers": {"tradavity": server}}, indent=2)
    if client == "claude-code":
        env = [] if sandbox else ["--env", f"TRADAVITY_API_KEY={KEY_PLACEHOLDER}"]
        parts = ["claude", "mcp", "add", "tradavity", *env, "--", command, *args]
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
    raise ValueError(f"unknown client {client!r}; one of {', '.join(CLIENTS)}")
