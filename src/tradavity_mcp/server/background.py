"""What the server does unasked, for as long as it runs: finish pending writes, prune
the ledger, pick up syncs the platform ran on its own, and once, soon after start, build
the models the first call would otherwise build."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
from pydantic import BaseModel

from ..api.clock import Now
from ..settings import Settings
from .sync.status import refresh_sync
from .workspace import Workspace
from .writes.ledger import CallRecord
from .writes.offload import AsyncLedger

if TYPE_CHECKING:
    from .writes.table import Backoff

__all__ = [
    "KEY_LOOKUP_SECONDS",
    "PRUNE_INTERVAL_SECONDS",
    "REFDATA_REFRESH_SECONDS",
    "RESUME_INTERVAL_SECONDS",
    "SYNC_POLL_SECONDS",
    "WARM_UP_DELAY_SECONDS",
    "Guest",
    "Resumer",
    "build_models_soon",
    "poll_sync_forever",
    "refresh_reference_forever",
]

logger = logging.getLogger("tradavity_mcp.server")

#: How often the resumer looks for pending writes (each call is tried on its own
#: schedule, `writes.table.Backoff`).
RESUME_INTERVAL_SECONDS = 30.0
#: How often finished calls past their retention are pruned from the ledger.
PRUNE_INTERVAL_SECONDS = 3600.0
#: How long the resumer waits before looking again for the kept key of a user it found
#: none for (a per-user key: their calls wait for them; or a grant not made yet).
KEY_LOOKUP_SECONDS = 600.0
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


#: A short-lived workspace for a principal no request brought to this process (None:
#: its key is not at hand), as an async context manager that closes its client.
Guest = Callable[[str], AbstractAsyncContextManager[Workspace | None]]


class Resumer:
    """Finishes unattended pending writes, and now and then prunes the ledger's old calls.

    Each pass reads every pending call in the ledger once. A call whose principal has a
    workspace in this process is finished there; another, by a `guest` workspace made
    for the pass from the key the user's OAuth grant holds (one at a time, closed after),
    so a restart strands no one whose key the server keeps. A principal with neither
    waits for its user's next connection. Each call is tried at once, then on the
    `table.Backoff` schedule while it stays pending.
    """

    def __init__(
        self,
        *,
        ledger: AsyncLedger,
        clock: Now,
        workspaces: Workspaces,
        settings: Settings,
        guest: Guest | None = None,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._workspaces = workspaces
        self._guest = guest
        self._allowed_dirs = list(settings.allowed_dirs)
        self._retention = settings.ledger_retention_days * 86400
        self._pruned_at = -math.inf
        self._backoff: Backoff | None = None
        #: Principals whose key the server does not keep, and when to look again.
        self._keyless: dict[str, float] = {}
        #: Passes done (for tests and diagnostics).
        self.passes = 0

    async def run_forever(self, interval: float) -> None:
        while True:
            await self.run_once()
            await anyio.sleep(interval)

    async def run_once(self) -> None:
        """One pass: every pending call that is due, then pruning when it is due."""
        try:
            await self._resume_all()
        except Exception:  # the resumer must outlive any one failure
            logger.exception("resumer pass failed")
        if self._clock() - self._pruned_at > PRUNE_INTERVAL_SECONDS:
            self._pruned_at = self._clock()
            try:
                await self._ledger.prune(self._pruned_at - self._retention)
            except Exception:
                logger.exception("ledger prune failed")
        self.passes += 1

    async def _resume_all(self) -> None:
        pending = await self._ledger.pending_calls()
        if not pending and self._backoff is None:
            return  # nothing to do: the journaling code is not even loaded
        # The journaling code loads here, in the background, not on the way to `initialize`.
        from .writes.journal import RunEnv  # noqa: PLC0415
        from .writes.table import Backoff, resume_pending  # noqa: PLC0415

        backoff = self._backoff = self._backoff or Backoff()
        backoff.keep_only(pending)
        env = RunEnv(allowed_dirs=self._allowed_dirs)
        by_principal: dict[str, list[CallRecord]] = {}
        for record in pending:
            by_principal.setdefault(record.principal, []).append(record)
        for gone in [p for p in self._keyless if p not in by_principal]:
            del self._keyless[gone]
        here = {ws.principal: ws for ws in self._workspaces()}
        for principal, records in by_principal.items():
            try:
                ws = here.get(principal)
                if ws is not None:
                    await resume_pending(ws, env, records=records, backoff=backoff)
                    continue
                now = self._clock()
                if self._guest is None or not any(backoff.due(r, now) for r in records):
                    continue
                if self._keyless.get(principal, -math.inf) > now:
                    continue  # looked for its key a moment ago, in vain
                async with self._guest(principal) as guest:
                    if guest is None:
                        self._keyless[principal] = now + KEY_LOOKUP_SECONDS
                        continue
                    self._keyless.pop(principal, None)
                    await resume_pending(guest, env, records=records, backoff=backoff)
            except Exception:  # one user's failure must not stop the others
                logger.exception("resuming a user's pending calls failed")
