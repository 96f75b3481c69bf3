"""The server secret: required off loopback, generated 0600 on loopback, and what it
seals only it opens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tradavity_mcp.server.oauth.crypto import (
    SECRET_FILE,
    KeyBox,
    hash_token,
    load_secret,
    new_token,
)
from tradavity_mcp.settings import ConfigError, Settings

KEY = "tvty_" + "ab" * 24


def test_secret_required_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRADAVITY_MCP_SECRET_KEY"):
        load_secret(None, tmp_path, loopback=False)
    with pytest.raises(ConfigError, match="at least 32"):
        load_secret("short", tmp_path, loopback=False)
    assert not (tmp_path / SECRET_FILE).exists()
    box = load_secret("x" * 40, tmp_path, loopback=False)
    assert box.open(box.seal(KEY)) == KEY


def test_secret_generated_on_loopback_with_0600_and_kept(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path / "state", loopback=True)
    path = tmp_path / "state" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal(KEY)
    again = load_secret(None, tmp_path / "state", loopback=True)
    assert again.open(sealed) == KEY, "a restart keeps the grants readable"


def test_sealed_key_is_not_the_key_and_another_secret_cannot_open_it() -> None:
    box = KeyBox("a" * 40)
    sealed = box.seal(KEY)
    assert KEY.encode() not in sealed
    assert KEY[5:].encode() not in sealed
    assert box.seal(KEY) != sealed, "each seal is fresh"
    assert KeyBox("b" * 40).open(sealed) is None
    assert box.mac("key", KEY) != KeyBox("b" * 40).mac("key", KEY)
    assert box.same_mac(box.mac("csrf", "r", "c"), "csrf", "r", "c")
    assert not box.same_mac(box.mac("csrf", "r", "c"), "csrf", "r", "other")


def test_tokens_are_random_and_stored_by_hash() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43
    assert hash_token(token) != token
    assert len(hash_token(token)) == 64


def test_settings_read_the_secret_and_redirect_hosts() -> None:
    env = {
        "TRADAVITY_MCP_SECRET_KEY": "s" * 40,
        "TRADAVITY_MCP_OAUTH_REDIRECT_HOSTS": "Claude.ai, mcp.example.com",
    }
    settings = Settings.load(environ=env, require_key=False)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s" * 40
    assert "s" * 40 not in repr(settings)
    assert settings.oauth_redirect_hosts == ("claude.ai", "mcp.example.com")
    default = Settings.load(environ={}, require_key=False)
    assert default.secret_key is None
    assert default.oauth_redirect_hosts == ("claude.ai", "claude.com", "chatgpt.com")
    with pytest.raises(ConfigError, match="host names"):
        Settings.load(
            environ={"TRADAVITY_MCP_OAUTH_REDIRECT_HOSTS": "https://evil/"}, require_key=False
        )
