"""`tradavity-mcp grants list|revoke` and the `--auth oauth` start checks."""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import pytest

from tradavity_mcp.cli import main
from tradavity_mcp.server.oauth.clients import ClientDocuments
from tradavity_mcp.server.oauth.crypto import KeyBox
from tradavity_mcp.server.oauth.offload import AsyncOAuthStore
from tradavity_mcp.server.oauth.provider import TradavityProvider
from tradavity_mcp.server.oauth.store import Checked, OAuthStore, Pending

KEY = "tvty_" + "cd" * 24


def _grant(state: Path) -> tuple[str, str]:
    """A grant as the consent page makes it; returns (grant id, access token)."""
    box = KeyBox("k" * 40)
    store = OAuthStore(state / "oauth.sqlite3")
    pending = Pending(
        client_id="c1",
        client_name="Claude",
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        redirect_explicit=True,
        code_challenge="x",
        state=None,
        resource="https://mcp.example.com/mcp",
        scopes=None,
    )
    checked = Checked(
        user_label="dana@example.com",
        key_mac=box.mac("key", KEY),
        key_sealed=box.seal(KEY),
        scopes=["read:trades"],
    )
    store.add_grant(pending, checked)
    grant = store.grants()[0]
    access = store.issue(grant.id).access
    store.close()
    return grant.id, access


def test_grants_listed_and_revoked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["grants", "list", "--state-dir", str(state)]) == 0
    assert "no grants" in capsys.readouterr().out
    grant_id, access = _grant(state)
    assert stat.S_IMODE((state / "oauth.sqlite3").stat().st_mode) == 0o600
    assert main(["grants", "list", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert grant_id in out
    assert "dana@example.com" in out
    assert "via Claude" in out
    assert KEY[5:] not in out
    assert main(["grants", "revoke", grant_id, "--state-dir", str(state)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["grants", "revoke", grant_id, "--state-dir", str(state)]) == 1
    assert "no live grant" in capsys.readouterr().out
    assert main(["grants", "list", "--state-dir", str(state)]) == 0
    assert grant_id not in capsys.readouterr().out
    assert main(["grants", "list", "--revoked", "--state-dir", str(state)]) == 0
    assert "revoked" in capsys.readouterr().out
    # The revoked grant's token no longer resolves to its key.
    store = OAuthStore(state / "oauth.sqlite3")
    provider = TradavityProvider(
        AsyncOAuthStore(store),
        KeyBox("k" * 40),
        ClientDocuments(),
        issuer="https://mcp.example.com",
        resource="https://mcp.example.com/mcp",
        redirect_hosts=(),
    )
    assert anyio.run(provider.resolve, access) is None
    store.close()


def test_oauth_off_loopback_needs_https_public_url_and_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADAVITY_MCP_SECRET_KEY", raising=False)
    base = ["--transport", "http", "--host", "0.0.0.0", "--auth", "oauth"]  # noqa: S104
    base += ["--allowed-host", "mcp.example.com", "--state-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        main(base)
    assert exit_.value.code == 2
    assert "--public-url https://" in capsys.readouterr().err
    assert main([*base, "--public-url", "https://mcp.example.com"]) == 2
    assert "TRADAVITY_MCP_SECRET_KEY" in capsys.readouterr().err
