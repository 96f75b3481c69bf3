"""Where the reference leaves a shape open: what we read, and saying so when it is not there.

The reference names some answers' contents without their fields (`/me` returns "the
key's scopes", a list returns its rows, a sync connection has a status). The client
reads the sandbox's names and the likely alternatives; when none is there it takes
the reading that hides and refuses nothing, and says so here: once per process in the
log, and to `doctor`, which lists every miss (ARCHITECTURE.md has the table).
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import APIStatusError
from .models import SCOPE_PLACES

if TYPE_CHECKING:
    from .client import TradavityClient

__all__ = ["Finding", "missed", "misses", "probe"]

logger = logging.getLogger("tradavity_mcp.contract")

_lock = threading.Lock()
_MISSES: dict[str, str] = {}


def missed(assumption: str, what: str) -> None:
    """Record that `assumption` (a short name, e.g. "me.scopes") did not hold, and log
    `what` (plain words: what was looked for, what was found, what we do instead) the
    first time in this process."""
    with _lock:
        first = assumption not in _MISSES
        _MISSES[assumption] = what
    if first:
        logger.warning("Tradavity's answer was not as expected: %s", what)


def misses() -> dict[str, str]:
    """The assumptions that did not hold in this process, each with its last message."""
    with _lock:
        return dict(_MISSES)


@dataclass(frozen=True)
class Finding:
    """One assumption checked against a live API: whether it held, and what was seen."""

    assumption: str
    held: bool
    seen: str


#: The lists the server reads, with the wrapper names it looks for first.
_LISTS = (
    ("/accounts", "accounts"),
    ("/tags", "tags"),
    ("/tag-categories", "categories"),
    ("/strategies", "strategies"),
    ("/protocols", "protocols"),
    ("/autosync/connections", "connections"),
    ("/autosync/log", "log"),
)


async def probe(api: TradavityClient) -> list[Finding]:
    """Check each assumption of the table in ARCHITECTURE.md against the API `api` talks
    to, with reads and one harmless refused write (a tag with an empty name, sent twice
    under one Idempotency-Key: nothing is written). Never raises for a shape it meets."""
    findings: list[Finding] = []
    me = await api.me()
    where = me.scopes_at
    findings.append(
        Finding(
            "me.scopes",
            where == SCOPE_PLACES[0],
            f"the key's scopes at {where}" if where else "no scopes in GET /me",
        )
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for path, name in _LISTS:
        try:
            data = (await api.request("GET", path, params={"limit": 5})).data
        except APIStatusError as exc:
            findings.append(Finding(f"rows:GET {path}", False, f"not read: {exc}"))
            continue
        wrapped = data.get(name) if isinstance(data, dict) else None
        if isinstance(wrapped, list):
            rows[path] = [r for r in wrapped if isinstance(r, dict)]
            findings.append(Finding(f"rows:GET {path}", True, f"rows under '{name}'"))
        else:
            keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
            findings.append(Finding(f"rows:GET {path}", False, f"no '{name}' list (found: {keys})"))
    findings.append(_fields("autosync.connection", rows, "/autosync/connections",
                            ("status", "token_status", "is_active")))  # fmt: skip
    findings.append(_fields("autosync.log_id", rows, "/autosync/log", ("log_id",)))
    findings.append(await _errors_cached(api))
    return findings


def _fields(
    assumption: str, rows: dict[str, list[dict[str, Any]]], path: str, names: tuple[str, ...]
) -> Finding:
    sample = rows.get(path)
    if not sample:
        return Finding(assumption, True, f"no rows in GET {path} to check (nothing to misread)")
    absent = sorted({n for r in sample for n in names if n not in r})
    if absent:
        found = ", ".join(sorted(sample[0]))
        return Finding(assumption, False, f"rows lack {', '.join(absent)} (found: {found})")
    return Finding(assumption, True, f"rows carry {', '.join(names)}")


async def _errors_cached(api: TradavityClient) -> Finding:
    """Send one refused write twice under one key and see whether the second answer is
    the first replayed (then a cached 5xx would replay too: the server looks at once)."""
    key = f"contract-probe-{secrets.token_hex(8)}"
    answers: list[APIStatusError] = []
    for _ in range(2):
        try:
            await api.request("POST", "/tags", json={"name": ""}, idempotency_key=key)
        except APIStatusError as exc:
            answers.append(exc)
        else:  # pragma: no cover - the API accepted an empty tag name
            return Finding("errors.cached", False, "an empty tag name was accepted")
    first, second = answers
    if second.replayed or (first.request_id and first.request_id == second.request_id):
        seen = "errors are cached under the key (handled: the server looks at once)"
    else:
        seen = f"errors are not cached ({first.status} answered afresh each time)"
    return Finding("errors.cached", True, seen)
