"""What the server does unasked, for as long as it runs: finish pending writes, prune
the ledger, pick up syncs the platform ran on its own, and once, soon after start, build
the models the first call would otherwise build."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import anyio
from pydantic import BaseModel

from ..settings import Settings
from .sync.status import refresh_sync
from .workspace import Workspace

__all__ = [
    "PRUNE_INTERVAL_SECONDS",
    "REFDATA_REFRESH_SECONDS",
    "RESUME_INTERVAL_SECONDS",
    "SYNC_POLL_SECONDS",
    "WARM_UP_DELAY_SECONDS",
    "build_models_soon",
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
#: How long after start (after `initialize` on stdio) the models are built.
WARM_UP_DELAY_SECONDS = 0.5

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


async def build_models_soon(delay: float) -> None:
    """Build the validators of the API's and the journaling tools' models (deferred at
    import, ~50 ms of CPU) while the assistant composes its first call, so that the first
    journaled trade of a session is as quick as the next."""
    await anyio.sleep(delay)
    from ..api import models  # noqa: PLC0415 (the journaling code, loaded on first use)
    from .writes import args  # noqa: PLC0415

    for module in (models, args):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
                and not value.__pydantic_complete__
            ):
                value.model_rebuild()


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
