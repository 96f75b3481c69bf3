"""Settings resolve from arguments, then the environment, and fail in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradavity_mcp.settings import DEFAULT_BASE_URL, ConfigError, Settings

KEY = "tvty_" + "0123456789abcdef" * 3


def test_missing_key_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(environ={})
    message = str(info.value)
    assert "TRADAVITY_API_KEY" in message
    assert "--sandbox" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "bad",
    [
        "tvty_short",
        "sk_" + "0" * 48,
        "tvty_" + "G" * 48,
        "tvty_" + "0123456789ABCDEF" * 3,
        "tvty_" + "0" * 49,
    ],
)
def test_malformed_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(environ={"TRADAVITY_API_KEY": bad})
    assert bad not in str(info.value)
    assert bad[5:] not in str(info.value)
    assert "48" in str(info.value)


def test_environment_then_defaults() -> None:
    s = Settings.load(environ={"TRADAVITY_API_KEY": KEY})
    assert s.base_url == DEFAULT_BASE_URL
    assert s.read_only is False
    s = Settings.load(
        environ={
            "TRADAVITY_API_KEY": f"  {KEY}\n",
            "TRADAVITY_BASE_URL": "http://127.0.0.1:8765/api/v1/",
            "TRADAVITY_READ_ONLY": "true",
        }
    )
    assert s.base_url == "http://127.0.0.1:8765/api/v1"
    assert s.read_only is True
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == KEY


def test_arguments_win_over_the_environment(tmp_path: Path) -> None:
    s = Settings.load(
        base_url="https://example.test/api/v1",
        read_only=False,
        state_dir=tmp_path,
        allowed_dirs=[str(tmp_path)],
        environ={
            "TRADAVITY_API_KEY": KEY,
            "TRADAVITY_BASE_URL": "http://ignored/api/v1",
            "TRADAVITY_READ_ONLY": "1",
        },
    )
    assert s.base_url == "https://example.test/api/v1"
    assert s.read_only is False
    assert s.state_dir == tmp_path
    assert s.allowed_dirs == (tmp_path.resolve(),)


def test_sandbox_needs_no_key() -> None:
    s = Settings.load(sandbox=True, environ={})
    assert s.sandbox is True
    assert s.api_key is None


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="TRADAVITY_BASE_URL"):
        Settings.load(environ={"TRADAVITY_API_KEY": KEY, "TRADAVITY_BASE_URL": "ftp://x"})


def test_redis_url_from_flag_or_environment_and_a_clear_line_otherwise() -> None:
    env = {"TRADAVITY_API_KEY": KEY, "TRADAVITY_REDIS_URL": "redis://cache:6379/2"}
    assert Settings.load(environ=env).redis_url == "redis://cache:6379/2"
    assert Settings.load(environ=env, redis_url="rediss://other/0").redis_url == "rediss://other/0"
    assert Settings.load(environ={"TRADAVITY_API_KEY": KEY}).redis_url is None
    with pytest.raises(ConfigError) as info:
        Settings.load(environ={**env, "TRADAVITY_REDIS_URL": "http://cache:6379"})
    assert "TRADAVITY_REDIS_URL (--redis)" in str(info.value)
    assert "\n" not in str(info.value)


def test_trusted_proxies_from_flag_or_environment_and_a_clear_line_otherwise() -> None:
    env = {"TRADAVITY_API_KEY": KEY}
    assert Settings.load(environ=env).trusted_proxies == ()  # nobody, loopback included
    listed = {**env, "TRADAVITY_MCP_TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16,::1 ,"}
    assert Settings.load(environ=listed).trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "::1")
    flags = Settings.load(environ=listed, trusted_proxies=["127.0.0.1", "fd00::/8,127.0.0.1"])
    assert flags.trusted_proxies == ("127.0.0.1", "fd00::/8")
    with pytest.raises(ConfigError) as info:
        Settings.load(environ={**env, "TRADAVITY_MCP_TRUSTED_PROXIES": "balancer.internal"})
    assert str(info.value) == (
        "TRADAVITY_MCP_TRUSTED_PROXIES takes IP addresses or networks of your load "
        "balancers, separated by commas (e.g. 10.0.0.5 or 10.0.0.0/24); "
        "'balancer.internal' is not one"
    )
    with pytest.raises(ConfigError) as info:
        Settings.load(environ=env, trusted_proxies=["10.0.0.7/24"])
    assert str(info.value) == (
        "--trusted-proxy: '10.0.0.7/24' is an address inside a network, not the network; "
        "write 10.0.0.0/24 (or the address alone)"
    )
