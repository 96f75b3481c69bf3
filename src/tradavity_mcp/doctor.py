"""`tradavity-mcp doctor`: is this setup ready to journal? One line per check, a fix for
each problem, never the key.

Checks, in order: the API key's format, the base URL (`GET /me` answers like the Tradavity
API), the key's scopes against the tools, the state directory, the write ledger, pending
writes, and the clock against the API's. Exit 0 when nothing failed, 1 otherwise.

`probe_me` is also what `tradavity-mcp --transport http` runs before it serves, so a
wrong `TRADAVITY_BASE_URL` is one clear line at start instead of "not found" on every call.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import httpx2
from pydantic import SecretStr

from . import __version__
from .api.client import TradavityClient
from .api.contract import probe
from .api.errors import TradavityError
from .api.models import SCOPE_PLACES, Me
from .server.errors import describe_error
from .server.writes.stores import open_ledger
from .settings import API_KEY_PATTERN, DEFAULT_BASE_URL, ConfigError, Settings

__all__ = ["Check", "Probe", "describe_probe", "probe_me", "run_doctor"]

Status = Literal["ok", "warn", "FAIL"]

#: Beyond this the API's "today", rate windows and replay windows disagree with ours.
CLOCK_WARN_SECONDS = 60.0
CLOCK_FAIL_SECONDS = 300.0

_KEY_FIX = "create a new key in Tradavity -> Settings -> API and set TRADAVITY_API_KEY to it"


@dataclass
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Probe:
    """What `GET /me` said. `kind` is one of: ok, unreachable, not_api, key_refused, error."""

    kind: str
    base_url: str
    status: int = 0
    code: str = ""
    message: str = ""
    me: dict[str, Any] = field(default_factory=dict)
    skew_seconds: float | None = None


async def probe_me(
    base_url: str,
    key: str | None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    wait_seconds: float = 10.0,
) -> Probe:
    """One `GET /me`, no retries. Without a key a real API answers 401 `unauthorized`."""
    headers = {"Accept": "application/json", "User-Agent": f"tradavity-mcp/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = base_url.rstrip("/") + "/me"
    try:
        async with httpx2.AsyncClient(transport=transport, timeout=wait_seconds) as http:
            sent = time.time()
            response = await http.get(url, headers=headers)
            received = time.time()
    except httpx2.HTTPError as exc:
        return Probe("unreachable", base_url, message=type(exc).__name__)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "ok" not in body or response.status_code == 404:
        # /me exists on every key and plan: a 404 there means the URL is not the API's.
        return Probe("not_api", base_url, status=response.status_code)
    skew = None
    if "date" in response.headers:
        try:
            theirs = parsedate_to_datetime(response.headers["date"]).timestamp()
            skew = theirs - (sent + received) / 2
        except (TypeError, ValueError):
            skew = None
    if body.get("ok") is True and response.is_success:
        data = body.get("data")
        return Probe(
            "ok",
            base_url,
            status=response.status_code,
            me=data if isinstance(data, dict) else {},
            skew_seconds=skew,
        )
    error = _dict(body.get("error"))
    code = str(error.get("code") or "")
    kind = "key_refused" if response.status_code == 401 else "error"
    return Probe(
        kind,
        base_url,
        status=response.status_code,
        code=code,
        message=str(error.get("message") or ""),
        skew_seconds=skew,
    )


def describe_probe(probe: Probe, *, with_key: bool) -> str | None:
    """One line for a probe that went wrong (None when it is fine), naming what to change."""
    url = probe.base_url
    if probe.kind == "unreachable":
        return (
            f"TRADAVITY_BASE_URL {url} cannot be reached ({probe.message}): check the URL "
            f"(the default is {DEFAULT_BASE_URL}) and the network"
        )
    if probe.kind == "not_api":
        return (
            f"TRADAVITY_BASE_URL {url} is not the Tradavity API (GET /me answered "
            f"{probe.status}): set it to the API's /api/v1 address, "
            f"e.g. {DEFAULT_BASE_URL}, or unset it"
        )
    if probe.kind == "key_refused":
        if not with_key:
            return None  # the API is there; a keyless probe is refused by design
        reason = {
            "key_revoked": "was revoked",
            "key_expired": "has expired",
        }.get(probe.code, "is not accepted (unknown or mistyped)")
        return f"TRADAVITY_API_KEY {reason} ({probe.status} {probe.code}): {_KEY_FIX}"
    if probe.kind == "error":
        return (
            f"GET {url}/me answered {probe.status} {probe.code}: {probe.message} "
            "(try again shortly; if it persists, check TRADAVITY_BASE_URL)"
        )
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- the checks ---------------------------------------------------------------------------


def _check_key(settings: Settings, raw: str | None) -> Check:
    if settings.sandbox:
        return Check("ok", "API key", "not needed: running on the built-in sandbox")
    if raw is None or not raw.strip():
        return Check(
            "FAIL",
            "API key",
            "TRADAVITY_API_KEY is not set",
            "export TRADAVITY_API_KEY=<your key from Tradavity -> Settings -> API>, "
            "or try it without one: tradavity-mcp doctor --sandbox",
        )
    if not API_KEY_PATTERN.fullmatch(raw.strip()):
        return Check(
            "FAIL",
            "API key",
            "TRADAVITY_API_KEY is not a Tradavity key ('tvty_' + 48 lowercase hex characters)",
            "copy the full key again from Tradavity -> Settings -> API (it is shown once; "
            "if it is lost, create a new one)",
        )
    return Check("ok", "API key", "set, and shaped like a Tradavity key")


def _check_api(probe: Probe, settings: Settings) -> Check:
    shown = "the built-in sandbox" if settings.sandbox else settings.base_url
    if probe.kind == "key_refused":
        # The API answered, as the API: the fault is the key's, on the key's own row.
        return Check(
            "ok", "base URL", f"{shown} answers like the Tradavity API (it refused the key)"
        )
    line = describe_probe(probe, with_key=True)
    if line is not None:
        detail, _, fix = line.partition(": ")
        return Check("FAIL", "base URL", detail, fix)
    user = _dict(probe.me.get("user"))
    prefs = probe.me.get("preferences")
    tz = prefs.get("timezone") if isinstance(prefs, dict) else None
    plan = probe.me.get("plan")
    tier = plan.get("tier") if isinstance(plan, dict) else plan
    who = ", ".join(str(x) for x in (tier, tz) if x)
    return Check("ok", "base URL", f"{shown} answers as {user.get('name', 'your user')} ({who})")


def _check_scopes(probe: Probe, settings: Settings) -> Check:
    if probe.kind != "ok":
        return Check("warn", "scopes", "not checked (GET /me did not succeed with the key)")
    from .server.tools import TOOLS

    me = Me.model_validate(probe.me)
    if me.scopes_at is None:
        return Check(
            "warn",
            "scopes",
            "GET /me did not say the key's scopes (looked at "
            + ", ".join(SCOPE_PLACES)
            + "): every tool is offered and Tradavity answers a call the key may not make",
            "nothing to do; `doctor --contract` shows what /me holds",
        )
    granted = me.scopes
    wanted = {
        t.name: t.scope
        for t in TOOLS
        if t.scope is not None and not (settings.read_only and t.writes)
    }
    missing = sorted({s for s in wanted.values() if s not in granted})
    if not missing:
        return Check("ok", "scopes", "the key grants every scope the tools need")
    hidden = sorted(t for t, s in wanted.items() if s in missing)
    return Check(
        "warn",
        "scopes",
        f"the key lacks {', '.join(missing)}, so {len(hidden)} tools are hidden "
        f"({', '.join(hidden)})",
        "grant those scopes to the key in Tradavity -> Settings -> API (or create a key with "
        "'Read + Write everything'); a read-only key is fine with --read-only",
    )


def _check_state_dir(state_dir: Path) -> Check:
    fix = (
        "set TRADAVITY_STATE_DIR (or --state-dir) to a folder this user can write, "
        "or fix the folder's permissions"
    )
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Check("FAIL", "state dir", f"{state_dir} cannot be written ({reason})", fix)
    return Check("ok", "state dir", f"{state_dir} is writable")


def _check_ledger(settings: Settings) -> tuple[Check, Check]:
    """The write ledger (SQLite in the state directory, or PostgreSQL with --store)."""
    path: Path | str = settings.ledger_path
    if settings.store_url is not None:
        from .server.writes.store_pg import redact_url  # the driver only when used

        path = redact_url(settings.store_url)  # never the password
    try:
        ledger = open_ledger(settings)
    except Exception as exc:  # the ledger's own errors vary; report any of them plainly
        if settings.store_url is not None:
            from .server.writes.ledger import LedgerUnavailable
            from .server.writes.store_pg import described

            # The store's own words say what is wrong and what to do (credentials, a
            # missing database, rights, an unreachable server), the password hidden.
            failed = Check(
                "FAIL",
                "ledger",
                str(exc)
                if isinstance(exc, LedgerUnavailable)
                else f"{path} cannot be opened ({described(exc, settings.store_url)})",
            )
        else:
            failed = Check(
                "FAIL",
                "ledger",
                f"{path} cannot be opened ({type(exc).__name__}: {exc})",
                "stop every tradavity-mcp process, move the file aside (its pending writes "
                "will not be resumed), and start the server again: it makes a new ledger",
            )
        return failed, Check("warn", "pending", "not checked (the ledger did not open)")
    try:
        pending = ledger.pending_calls()
    except Exception as exc:
        return (
            Check("FAIL", "ledger", f"{path} cannot be read ({type(exc).__name__}: {exc})"),
            Check("warn", "pending", "not checked (the ledger could not be read)"),
        )
    finally:
        close = getattr(ledger, "close", None)
        if callable(close):
            close()
    ok = Check("ok", "ledger", f"{path} opens")
    if not pending:
        return ok, Check("ok", "pending", "no writes waiting to be finished")
    oldest = min(getattr(p, "created_at", time.time()) for p in pending)
    since = datetime.fromtimestamp(oldest).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    tools = sorted({str(getattr(p, "tool", "?")) for p in pending})
    return ok, Check(
        "warn",
        "pending",
        f"{len(pending)} write(s) not confirmed yet ({', '.join(tools)}; oldest {since})",
        "start the server with the API reachable: it finishes them by itself, each exactly once",
    )


async def _check_redis(url: str) -> Check:
    """`--redis`: what the replicas share beyond the ledger answers."""
    from .server.replicas.redis_client import open_redis  # redis only when used
    from .server.writes.store_pg import described, redact_url

    shown = redact_url(url)  # never the password
    redis = open_redis(url)
    try:
        info = await redis.info("server")
    except Exception as exc:  # whatever the driver raises, said on one line
        return Check(
            "FAIL",
            "redis",
            f"{shown} does not answer ({described(exc, url)})",
            "start Redis there, or correct --redis / TRADAVITY_REDIS_URL: replicas share "
            "sync runs, key checks and each key's rate window through it",
        )
    finally:
        await redis.aclose()
    return Check("ok", "redis", f"{shown} answers (Redis {info.get('redis_version', '?')})")


def _check_clock(probe: Probe) -> Check:
    if probe.skew_seconds is None:
        why = "no answer from the API" if probe.kind == "unreachable" else "no Date header"
        return Check("ok", "clock", f"not measured ({why})")
    skew = probe.skew_seconds
    way = "ahead of" if skew < 0 else "behind"
    text = f"this machine is {abs(skew):.0f} s {way} the API's clock"
    fix = "turn on automatic time (NTP) in your system settings"
    if abs(skew) >= CLOCK_FAIL_SECONDS:
        return Check("FAIL", "clock", text, fix)
    if abs(skew) >= CLOCK_WARN_SECONDS:
        return Check("warn", "clock", text, fix)
    return Check("ok", "clock", f"within {max(1.0, abs(skew)):.0f} s of the API's clock")


async def _checks(settings: Settings, raw_key: str | None) -> list[Check]:
    checks = [_check_key(settings, raw_key)]
    if settings.sandbox:
        from .sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app

        app = create_app(SandboxConfig(db=settings.sandbox_path))
        probe: Probe | None = await probe_me(
            "http://sandbox.local/api/v1", DEMO_KEY, transport=SandboxTransport(app)
        )
    elif checks[0].status != "ok" or settings.api_key is None:
        # Without a usable key nothing is sent: the API would only refuse it, and
        # the key's row already says what to do.
        probe = None
        checks.append(
            Check("warn", "base URL", f"{settings.base_url} not checked (no usable API key)")
        )
        checks.append(Check("warn", "scopes", "not checked (no usable API key)"))
    else:
        probe = await probe_me(settings.base_url, settings.api_key.get_secret_value())
        if probe.kind == "key_refused":
            detail, _, fix = (describe_probe(probe, with_key=True) or "").partition(": ")
            checks[0] = Check("FAIL", "API key", detail, fix)
    if probe is not None:
        checks.append(_check_api(probe, settings))
        checks.append(_check_scopes(probe, settings))
    state = _check_state_dir(settings.state_dir)
    checks.append(state)
    if state.status == "ok":
        checks.extend(_check_ledger(settings))
    else:
        checks.append(Check("warn", "ledger", "not checked (the state directory is unusable)"))
    if settings.redis_url is not None:
        checks.append(await _check_redis(settings.redis_url))
    checks.append(
        _check_clock(probe)
        if probe is not None
        else Check("ok", "clock", "not measured (the API was not asked)")
    )
    return checks


def report(checks: list[Check], out: TextIO) -> int:
    width = max(len(c.name) for c in checks)
    for c in checks:
        out.write(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}\n")
        if c.fix and c.status != "ok":
            out.write(f"  {'':<4}  {'':<{width}}  fix: {c.fix}\n")
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        out.write(f"\n{failed} problem(s) to fix" + (f", {warned} warning(s)" if warned else ""))
        out.write(": see each 'fix:' line above.\n")
        return 1
    out.write("\nReady to journal" + (f" ({warned} warning(s) above)" if warned else "") + ".\n")
    return 0


def run_doctor(
    options: Mapping[str, Any], out: TextIO | None = None, *, contract: bool = False
) -> int:
    """Run every check for the settings the server itself would use (`options`: what the
    command line gives `Settings.load`: base_url, sandbox, read_only, state_dir); with
    `contract`, then check the API's shapes the reference leaves open."""
    out = out or sys.stdout  # looked up now: a caller may have redirected it
    raw_key = os.environ.get("TRADAVITY_API_KEY")
    out.write(f"tradavity-mcp {__version__} doctor\n\n")
    try:
        settings = Settings.load(
            **options,
            require_key=False,
            # The key is checked below with its own fix; here it must not stop the rest.
            environ={k: v for k, v in os.environ.items() if k != "TRADAVITY_API_KEY"},
        )
    except ConfigError as exc:
        out.write(f"  FAIL  settings  {exc}\n")
        return 1
    if raw_key and API_KEY_PATTERN.fullmatch(raw_key.strip()):
        settings = replace(settings, api_key=SecretStr(raw_key.strip()))
    checks = anyio.run(_checks, settings, raw_key)
    if contract:
        checks += anyio.run(_contract_checks, settings)
    return report(checks, out)


async def _contract_checks(settings: Settings) -> list[Check]:
    """`doctor --contract`: each assumption of ARCHITECTURE.md's "Where the reference is
    silent" table, checked against the API the key talks to."""
    transport: httpx2.AsyncBaseTransport | None = None
    base_url, key = settings.base_url, settings.api_key
    if settings.sandbox:
        from .sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app

        transport = SandboxTransport(create_app(SandboxConfig(db=settings.sandbox_path)))
        base_url, key = "http://sandbox.local/api/v1", SecretStr(DEMO_KEY)
    if key is None:
        return [Check("FAIL", "contract", "not checked: it needs an API key", _KEY_FIX)]
    async with TradavityClient(
        key.get_secret_value(), base_url=base_url, transport=transport
    ) as api:
        try:
            findings = await probe(api)
        except TradavityError as exc:
            return [Check("FAIL", "contract", f"not checked: {describe_error(exc)}")]
    return [
        Check(
            "ok" if f.held else "warn",
            f"contract {f.assumption}",
            f"{'held' if f.held else 'differs'}: {f.seen}",
            "" if f.held else "the server copes (see ARCHITECTURE.md); please report this line",
        )
        for f in findings
    ]
