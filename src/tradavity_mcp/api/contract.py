"""Where the reference leaves a shape open: what we read, and saying so when it is not there.

The reference names some answers' contents without their fields (`/me` returns "the
key's scopes", a list returns its rows, a sync connection has a status). The client
reads the sandbox's names and the likely alternatives; when none is there it takes
the reading that hides and refuses nothing, and says so here: once per process in the
log, and to `doctor`, which lists every miss (ARCHITECTURE.md has the table).
"""

from __future__ import annotations

import logging
import threading

__all__ = ["missed", "misses"]

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
