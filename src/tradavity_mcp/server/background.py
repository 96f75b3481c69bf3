"""What the server does unasked, for as long as it runs: finish pending writes, prune
the ledger, and pick up syncs the platform ran on its own."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import anyio

from ..settings import Settings
from .sync.status import refresh_sync
from .workspace import Workspace

__all__ = [
    "PRUNE_INTERVAL_SECONDS",
    "REFDATA_REFRESH_SECONDS",
    "RESUME_INTERVAL_SECONDS",
    "SYNC_POLL_SECONDS",
    "poll_sync_forever",
    "refresh_reference_forever",
    "resume_forever",
]

logger = logging.getLogger("tradavity_mcp.server")

#: How often the resumer looks for pending writes.
RESUME_INTERVAL_SECONDS = 30.0
#: How often finished calls past their retention are pruned from the ledger.
PRUNE_INTERVAL_SECONDS = 3600.0
#: How often the sync log is read for runs the platform started itself.
SYNC_POLL_SECONDS = 120.0
#: How often kept reference lists (accounts, tags, protocols, ...) are fetched again.
REFDATA_REFRESH_SECONDS = 600.0

Workspaces = Callable[[], list[Workspace]]


async def poll_sync_forever(workspaces: Workspaces, interval: float) -> None:
    """Pick up syncs the platform ran on its own (the 15-minute schedule)."""
    while True:
        await anyio.sleep(interval)
        for ws in workspaces():
            if ws.scopes is not None and "read:autosync" not in ws.scopes:
                continue
            try:
                await refresh_sync(ws)
            except Exception as exc:  # polling must outlive any one failure
                logger.info("sync poll failed: %s", exc)


async def refresh_reference_forever(workspaces: Workspaces, interval: float) -> None:
    """Keep every workspace's reference lists fresh, off the path of any tool call."""
    while True:
        await anyio.sleep(interval)
        for ws in workspaces():
            try:
                await ws.ref.refresh()
            except Exception as exc:  # refreshing must outlive any one failure
                logger.info("reference refresh failed: %s", exc)


async def resume_forever(workspaces: Workspaces, settings: Settings, interval: float) -> None:
    """Finish unattended pending writes; now and then, prune the ledger's old calls."""
    # The journaling code loads here, in the background, not on the way to `initialize`.
    from .writes.journal import RunEnv  # noqa: PLC0415
    from .writes.table import resume_pending  # noqa: PLC0415

    env = RunEnv(allowed_dirs=list(settings.allowed_dirs))
    retention = settings.ledger_retention_days * 86400
    pruned_at = -math.inf
    while True:
        for ws in workspaces():
            try:
                await resume_pending(ws, env)
            except Exception:  # the resumer must outlive any one failure
                logger.exception("resumer pass failed")
        current = workspaces()
        if current and current[0].clock() - pruned_at > PRUNE_INTERVAL_SECONDS:
            pruned_at = current[0].clock()
            try:
                await current[0].ledger.prune(pruned_at - retention)
            except Exception:
                logger.exception("ledger prune failed")
        await anyio.sleep(interval)
