"""Settings: command-line arguments first, then the environment, then defaults.

The API key is held as a `SecretStr` from the moment it is read, so it cannot reach a
log line, an error message or a repr by accident. Validation errors name the variable to
set and the expected shape, never the value that was given.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

__all__ = [
    "API_KEY_PATTERN",
    "DEFAULT_BASE_URL",
    "DEFAULT_REDIRECT_HOSTS",
    "ConfigError",
    "Settings",
    "default_sandbox_db",
    "user_state_dir",
    "validate_api_key",
]

DEFAULT_BASE_URL = "https://app.tradavity.com/api/v1"
API_KEY_PATTERN = re.compile(r"tvty_[0-9a-f]{48}")

_ENV_KEY = "TRADAVITY_API_KEY"
_ENV_BASE_URL = "TRADAVITY_BASE_URL"
_ENV_STATE_DIR = "TRADAVITY_STATE_DIR"
_ENV_ALLOWED_DIRS = "TRADAVITY_ALLOWED_DIRS"
_ENV_READ_ONLY = "TRADAVITY_READ_ONLY"
_ENV_SANDBOX_DB = "TRADAVITY_SANDBOX_DB"
_ENV_OUTPUT_SCHEMAS = "TRADAVITY_OUTPUT_SCHEMAS"
_ENV_SANDBOX = "TRADAVITY_SANDBOX"
_ENV_SANDBOX_DEMO_DAYS = "TRADAVITY_SANDBOX_DEMO_DAYS"
_ENV_DUPLICATE_WINDOW = "TRADAVITY_DUPLICATE_WINDOW"
_ENV_STORE_URL = "TRADAVITY_STORE_URL"
_ENV_REDIS_URL = "TRADAVITY_REDIS_URL"
_ENV_LEDGER_RETENTION = "TRADAVITY_LEDGER_RETENTION_DAYS"
_ENV_SECRET_KEY = "TRADAVITY_MCP_SECRET_KEY"  # noqa: S105 (a variable name)
_ENV_REDIRECT_HOSTS = "TRADAVITY_MCP_OAUTH_REDIRECT_HOSTS"
_ENV_TRUSTED_PROXIES = "TRADAVITY_MCP_TRUSTED_PROXIES"
#: The shortest server secret accepted.
_MIN_SECRET_CHARS = 32
#: Hosts whose https redirect URIs `--auth oauth` accepts from dynamic client
#: registration by default (loopback http redirects of native clients always are).
DEFAULT_REDIRECT_HOSTS = ("claude.ai", "claude.com", "chatgpt.com")
#: The sandbox's own bound (`sandbox._seed.MAX_DEMO_DAYS`), repeated so that reading the
#: settings does not import the sandbox.
_MAX_DEMO_DAYS = 3650


def user_state_dir() -> Path:
    """Where this user's ledger lives by default, as the platform places state."""
    # Imported only when no directory was given: it costs a cold start ~3 ms.
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_state_dir("tradavity-mcp"))


def default_sandbox_db() -> str:
    """The sandbox's journal, the same file as `tradavity-mcp sandbox` keeps."""
    from .sandbox._cli import default_db  # noqa: PLC0415 (the sandbox only when used)

    return default_db()


class ConfigError(ValueError):
    """A setting is missing or malformed. The message is one line a user can act on."""


def validate_api_key(raw: str, *, source: str = _ENV_KEY) -> SecretStr:
    """Check the documented key shape (`tvty_` + 48 hex) without ever echoing the key."""
    key = raw.strip()
    if not key:
        raise ConfigError(
            f"{source} is empty: set it to your Tradavity API key (Settings -> API), "
            "or run with --sandbox to try the server without one."
        )
    if not API_KEY_PATTERN.fullmatch(key):
        raise ConfigError(
            f"{source} is not a Tradavity API key: keys are 'tvty_' followed by 48 "
            "lowercase hex characters. Copy the full key from Settings -> API."
        )
    return SecretStr(key)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _demo_days(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        days = int(raw.strip())
    except ValueError:
        days = 0
    if not 1 <= days <= _MAX_DEMO_DAYS:
        raise ConfigError(
            f"{_ENV_SANDBOX_DEMO_DAYS} must be a whole number of days, 1 to {_MAX_DEMO_DAYS}"
        )
    return days


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to run. Build it with `Settings.load(...)`."""

    api_key: SecretStr | None
    base_url: str = DEFAULT_BASE_URL
    sandbox: bool = False
    read_only: bool = False
    state_dir: Path = field(default_factory=user_state_dir)
    allowed_dirs: tuple[Path, ...] = ()
    #: The embedded sandbox's journal file ("": `default_sandbox_db()`, looked up when the
    #: sandbox is used, so that a real journal's start skips it).
    sandbox_db: str = ""
    #: Advertise each tool's output schema in tools/list. Off by default: results are
    #: structured either way, and the schemas cost ~700 tokens in every conversation.
    output_schemas: bool = False
    #: The embedded sandbox's demo journal length in days (None: the sandbox's default).
    sandbox_demo_days: int | None = None
    #: Seconds during which an identical creating call (no call id) is held back as a
    #: suspected duplicate.
    duplicate_window: float = 600.0
    #: Finished calls older than this many days are pruned from the ledger.
    ledger_retention_days: float = 30.0
    #: `--auth oauth`: the server secret that encrypts users' keys at rest (required off
    #: loopback; on loopback one is generated into the state directory when unset).
    secret_key: SecretStr | None = None
    #: `--auth oauth`: hosts dynamic client registration accepts https redirects on.
    oauth_redirect_hosts: tuple[str, ...] = DEFAULT_REDIRECT_HOSTS
    #: `--store postgresql://...`: the write ledger on PostgreSQL, shared by replicas
    #: (None: the SQLite ledger in the state directory).
    store_url: str | None = None
    #: `--redis redis://...`: what replicas share beyond the ledger (the subscription
    #: bus, sync runs and events, the `/me` cache, one rate window per API key). None:
    #: all of it in this process.
    redis_url: str | None = None
    #: `--trusted-proxy`: the load balancers (addresses or networks) whose
    #: `X-Forwarded-For` names the client. None: no peer is trusted, loopback included,
    #: and the peer's own address is the client's.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def sandbox_path(self) -> str:
        """The embedded sandbox's journal file."""
        return self.sandbox_db or default_sandbox_db()

    @property
    def ledger_path(self) -> Path:
        """The write ledger's file, in the state directory."""
        return self.state_dir / "ledger.sqlite3"

    @classmethod
    def load(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        sandbox: bool = False,
        read_only: bool | None = None,
        state_dir: str | Path | None = None,
        allowed_dirs: list[str] | None = None,
        sandbox_db: str | None = None,
        output_schemas: bool | None = None,
        store_url: str | None = None,
        redis_url: str | None = None,
        trusted_proxies: list[str] | None = None,
        require_key: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings: explicit arguments win over the environment.

        Raises `ConfigError` with one actionable line when the key is missing (and the
        sandbox was not asked for) or malformed.
        """
        env = os.environ if environ is None else environ
        sandbox = sandbox or _truthy(env.get(_ENV_SANDBOX))
        key = _api_key(api_key, env.get(_ENV_KEY), needed=require_key and not sandbox)
        url = (base_url or env.get(_ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{_ENV_BASE_URL} must be an http(s) URL, e.g. {DEFAULT_BASE_URL}")

        dirs_raw = (
            allowed_dirs
            if allowed_dirs is not None
            else [d for d in env.get(_ENV_ALLOWED_DIRS, "").split(os.pathsep) if d]
        )
        state = Path(state_dir or env.get(_ENV_STATE_DIR) or user_state_dir())
        return cls(
            api_key=key,
            base_url=url,
            sandbox=sandbox,
            read_only=read_only if read_only is not None else _truthy(env.get(_ENV_READ_ONLY)),
            state_dir=state,
            allowed_dirs=tuple(Path(d).expanduser().resolve() for d in dirs_raw),
            sandbox_db=sandbox_db or env.get(_ENV_SANDBOX_DB) or "",
            output_schemas=(
                output_schemas
                if output_schemas is not None
                else _truthy(env.get(_ENV_OUTPUT_SCHEMAS))
            ),
            sandbox_demo_days=_demo_days(env.get(_ENV_SANDBOX_DEMO_DAYS)),
            duplicate_window=_seconds(_ENV_DUPLICATE_WINDOW, env.get(_ENV_DUPLICATE_WINDOW), 600.0),
            ledger_retention_days=_seconds(
                _ENV_LEDGER_RETENTION, env.get(_ENV_LEDGER_RETENTION), 30.0
            ),
            secret_key=_secret(env.get(_ENV_SECRET_KEY)),
            oauth_redirect_hosts=_hosts(env.get(_ENV_REDIRECT_HOSTS)),
            store_url=_store_url(store_url or env.get(_ENV_STORE_URL)),
            redis_url=_redis_url(redis_url or env.get(_ENV_REDIS_URL)),
            trusted_proxies=_proxies(
                trusted_proxies
                if trusted_proxies
                else (env.get(_ENV_TRUSTED_PROXIES) or "").split(","),
                "--trusted-proxy" if trusted_proxies else _ENV_TRUSTED_PROXIES,
            ),
        )


def _api_key(given: str | None, from_env: str | None, *, needed: bool) -> SecretStr | None:
    """The key, from the flag or the environment, checked; one clear line if missing."""
    raw = given if given is not None else from_env
    if raw is not None and raw.strip():
        return validate_api_key(raw, source="--api-key" if given is not None else _ENV_KEY)
    if needed:
        raise ConfigError(
            f"{_ENV_KEY} is not set: export your Tradavity API key (Settings -> API), "
            "or run `tradavity-mcp --sandbox` to try it on the built-in sandbox."
        )
    return None


def _seconds(name: str, raw: str | None, default: float) -> float:
    """A non-negative number from the environment, with one clear line when it is not."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be zero or more, got {raw!r}")
    return value


def _store_url(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    url = raw.strip()
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{_ENV_STORE_URL} (--store) must be a postgresql:// URL, e.g. "
            "postgresql://tradavity@db.internal/tradavity (leave it unset for the local ledger)"
        )
    return url


def _redis_url(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    url = raw.strip()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{_ENV_REDIS_URL} (--redis) must be a redis://, rediss:// or unix:// URL, e.g. "
            "redis://cache.internal:6379/0 (leave it unset to keep this state in the process)"
        )
    return url


def _secret(raw: str | None) -> SecretStr | None:
    """The server secret, held as a `SecretStr`: at least 32 characters (it keys the OAuth
    encryption and the SDK's request state, both of which need that much)."""
    if raw is None or not raw.strip():
        return None
    if len(raw.strip()) < _MIN_SECRET_CHARS:
        raise ConfigError(
            f"{_ENV_SECRET_KEY} must be at least {_MIN_SECRET_CHARS} characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return SecretStr(raw.strip())


def _hosts(raw: str | None) -> tuple[str, ...]:
    """Comma-separated host names (no scheme, port or path), lower-cased."""
    if raw is None or not raw.strip():
        return DEFAULT_REDIRECT_HOSTS
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host):
            raise ConfigError(
                f"{_ENV_REDIRECT_HOSTS} takes host names separated by commas "
                f"(e.g. claude.ai,chatgpt.com); {host!r} is not one"
            )
    return hosts


def _proxies(raw: list[str], source: str) -> tuple[str, ...]:
    """Addresses or networks (CIDR) of trusted load balancers, each checked, in the form
    uvicorn's `forwarded_allow_ips` takes."""
    out: list[str] = []
    for item in (part.strip() for entry in raw for part in entry.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError:
            loose = _loose_network(item)
            if loose is not None:
                raise ConfigError(
                    f"{source}: {item!r} is an address inside a network, not the network; "
                    f"write {loose} (or the address alone)"
                ) from None
            raise ConfigError(
                f"{source} takes IP addresses or networks of your load balancers, separated "
                f"by commas (e.g. 10.0.0.5 or 10.0.0.0/24); {item!r} is not one"
            ) from None
        out.append(str(network.network_address) if "/" not in item else str(network))
    return tuple(dict.fromkeys(out))


def _loose_network(item: str) -> str | None:
    """`10.0.0.7/24` as the network it lies in, or None when it is no network at all."""
    try:
        return str(ipaddress.ip_network(item, strict=False))
    except ValueError:
        return None
