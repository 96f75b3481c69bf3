"""A workspace: everything the tools need for one principal (one API key).

On stdio there is one; in hosted per-user mode there is one per user, so no request
can see or use another user's client, cache or ledger entries.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from mcp.server.mcpserver.exceptions import ResourceError

from ..api.client import TradavityClient
from ..api.clock import Now, Sleep
from ..api.errors import APIStatusError, TradavityError
from ..settings import DEFAULT_BASE_URL
from .refdata import RefData
from .sync.monitor import SyncMonitor
from .when import LocalClock, zone_named
from .writes.call import DUPLICATE_WINDOW_SECONDS
from .writes.offload import AsyncLedger

__all__ = ["CURRENT_WORKSPACE", "Workspace", "current_workspace"]

logger = logging.getLogger("tradavity_mcp.server")

#: How long tools/list waits for the key's scopes before listing every tool.
SCOPES_WAIT_SECONDS = 1.5


@dataclass
class Workspace:
    api: TradavityClient
    #: The write ledger; every call on it is awaited (in a worker thread, off the loop).
    ledger: AsyncLedger
    ref: RefData
    clock: Now = time.time
    #: How waits (a sync cooldown) sleep; tests pass one that moves the sandbox clock.
    sleep: Sleep = anyio.sleep
    #: An identical creating call this recent is held back (`TRADAVITY_DUPLICATE_WINDOW`).
    duplicate_window: float = DUPLICATE_WINDOW_SECONDS
    #: What the key may do, from `/me`; None when it could not be read.
    scopes: frozenset[str] | None = None
    #: Sync runs and events seen by this workspace.
    sync: SyncMonitor = field(default_factory=SyncMonitor)
    #: A setup mistake every tool call should name instead of working (a wrong base URL).
    setup_problem: str | None = None
    #: Set once `scopes` is known (or known to be unknowable for now).
    scopes_ready: anyio.Event = field(default_factory=anyio.Event)

    async def load_scopes(self) -> None:
        """Learn the key's scopes from `/me`; on failure leave them unknown (list all)."""
        try:
            self.scopes = (await self.ref.me()).scopes
        except TradavityError as exc:
            logger.warning("could not read the key's scopes from /me: %s", exc)
            if isinstance(exc, APIStatusError) and exc.status in (404, 405):
                # Not the API at all (a wrong TRADAVITY_BASE_URL): every call would say
                # "not found". Say what to change instead, on the first call.
                self.setup_problem = (
                    f"TRADAVITY_BASE_URL {self.api.base_url} is not the Tradavity API "
                    f"(GET /me answered {exc.status}): set it to the API's /api/v1 "
                    f"address, e.g. {DEFAULT_BASE_URL}, or unset it, then restart the server."
                )
        finally:
            self.scopes_ready.set()

    async def wait_for_scopes(self, seconds: float = SCOPES_WAIT_SECONDS) -> None:
        with anyio.move_on_after(seconds):
            await self.scopes_ready.wait()

    @property
    def principal(self) -> str:
        return self.api.principal

    async def local_clock(self, *, strict: bool = False) -> LocalClock:
        """The user's clock now: their Tradavity timezone (from `/me`, kept with the
        reference data) and this workspace's time. When `/me` cannot be read, `strict`
        raises; otherwise the times are shown in UTC, marked UTC (what is shown after a
        write must not fail the write)."""
        try:
            name = (await self.ref.me()).timezone
        except TradavityError:
            if strict:
                raise
            return LocalClock.utc(self.clock())
        zone = zone_named(name)
        if zone is None:
            logger.warning("the user's timezone %r is not a known zone; using UTC", name)
            return LocalClock(UTC, "UTC", self.clock(), known=False)
        return LocalClock(zone, name, self.clock())

    async def to_utc(self, value: str, *, field_name: str = "trade_date") -> datetime:
        """A trade time as given (local without an offset, or `now`) in UTC; refused in
        the future (`LocalClock.trade_time`)."""
        clock = await self.local_clock(strict=True)
        return clock.trade_time(value, field_name=field_name)


#: The workspace of the request being handled (set by `scope.RequestScope`).
CURRENT_WORKSPACE: ContextVar[Workspace | None] = ContextVar("tradavity_workspace", default=None)


def current_workspace() -> Workspace:
    """The calling user's workspace (tools, resources and completions all find it here)."""
    ws = CURRENT_WORKSPACE.get()
    if ws is None:
        raise ResourceError("no workspace for this request")
    return ws
