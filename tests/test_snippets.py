"""`tradavity-mcp config <client>` snippets: valid, and never with a real key."""

from __future__ import annotations

import json
import shlex

import pytest

from tradavity_mcp.snippets import CLIENTS, KEY_PLACEHOLDER, snippet


@pytest.mark.parametrize("client", CLIENTS)
def test_snippets_parse_and_hold_only_a_placeholder(client: str) -> None:
    text = snippet(client)
    if client == "claude-code":
        parts = shlex.split(text)
        assert parts[:4] == ["claude", "mcp", "add", "tradavity"]
        assert f"TRADAVITY_API_KEY={KEY_PLACEHOLDER}" in parts
    else:
        doc = json.loads(text)
        assert doc
    assert "tvty_" not in text.replace(KEY_PLACEHOLDER, "")


def test_sandbox_snippets_need_no_key() -> None:
    desktop = json.loads(snippet("claude-desktop", sandbox=True))
    server = desktop["mcpServers"]["tradavity"]
    assert server["args"][-1] == "--sandbox"
    assert "env" not in server
    vscode = json.loads(snippet("vscode", uvx=True))
    assert vscode["servers"]["tradavity"]["command"] == "uvx"
    assert vscode["inputs"][0]["password"] is True
