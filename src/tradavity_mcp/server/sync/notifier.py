"""Notifications to subscribers when sync runs change (both protocol eras).

* 2026-07-28 clients listen through `subscriptions/listen`; the server's subscription
  bus is a `PrincipalBus`, which remembers whose request opened each listen stream and
  hands a user's sync events to that user's streams only.
* 2025-11-25 clients send `resources/subscribe`; we remember which session asked for
  which URI (and for which principal) and send `notifications/resources/updated` to
  those sessions only.

Either way, one user's syncs never reach another user, not even as a timing signal.

With `--redis` the bus is `shared.RedisPrincipalBus` (publishing through Redis pub/sub)
and each workspace's monitor hears the sync events of every replica. Each replica then
tells its own listeners and sessions about each event (`PrincipalBus.deliver_to`): the
event itself already crossed Redis, so publishing it again would reach every listener
once per replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.types import (
    EmptyResult,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from ..workspace import CURRENT_WORKSPACE, Workspace
from .monitor import SyncEvent

__all__ = ["SYNC_URIS", "PrincipalBus", "SyncNotifier", "install_legacy_subscriptions"]

logger = logging.getLogger("tradavity_mcp.sync")

SYNC_URIS = ("tradavity://sync/runs", "tradavity://sync/recent", "tradavity://sync/status")


class PrincipalBus:
    """The server's `SubscriptionBus` (2026-07-28 listen streams), aware of users.

    A listener belongs to the principal whose request subscribed it (the SDK subscribes
    inside the `subscriptions/listen` handler, where the request middleware has made the
    caller's workspace current). `publish` reaches every listener (server-wide changes,
    such as the tool list); `publish_to` only the listeners of one principal. A listener
    subscribed with no workspace (an unauthenticated request) gets no user's events.
    """

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[str | None, Callable[[ServerEvent], None]]] = {}

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        ws = CURRENT_WORKSPACE.get()
        token = object()
        self._listeners[token] = (ws.principal if ws is not None else None, listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    async def publish(self, event: ServerEvent) -> None:
        self._deliver(event, lambda owner: True)
        await anyio.lowlevel.checkpoint()

    async def publish_to(self, principal: str, event: ServerEvent) -> None:
        """Deliver `event` to the listen streams `principal` opened, and no others."""
        self._deliver(event, lambda owner: owner == principal)
        await anyio.lowlevel.checkpoint()

    async def deliver_to(self, principal: str, event: ServerEvent) -> None:
        """Like `publish_to`, for the listen streams opened on this replica only."""
        self._deliver(event, lambda owner: owner == principal)
        await anyio.lowlevel.checkpoint()

    def listeners(self, principal: str | None) -> int:
        """How many listen streams `principal` has open (for tests and diagnostics)."""
        return sum(1 for owner, _ in self._listeners.values() if owner == principal)

    def _deliver(self, event: ServerEvent, wanted: Callable[[str | None], bool]) -> None:
        for owner, listener in list(self._listeners.values()):
            if not wanted(owner):
                continue
            try:
                listener(event)
            except Exception:  # one bad listener must not starve the others
                logger.exception("subscription listener raised; continuing")


class SyncNotifier:
    """Turns sync events into resource-updated notifications for subscribers."""

    def __init__(self, bus: PrincipalBus) -> None:
        self.bus = bus
        self._send: MemoryObjectSendStream[tuple[str, SyncEvent]] | None = None
        #: legacy session -> (principal, subscribed URIs)
        self._legacy: dict[Any, tuple[str, set[str]]] = {}
        self._watched: set[int] = set()

    def watch(self, ws: Workspace) -> None:
        """Start forwarding this workspace's sync events (once per monitor: a shared one
        outlives a workspace made again for the same user)."""
        if id(ws.sync) in self._watched:
            return
        self._watched.add(id(ws.sync))
        principal = ws.principal

        def on_event(event: SyncEvent) -> None:
            if self._send is None:
                return
            try:
                self._send.send_nowait((principal, event))
            except anyio.WouldBlock:
                logger.warning("sync notification queue full; dropping one")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

        ws.sync.subscribe(on_event)

    async def run(self) -> None:
        """Deliver notifications until cancelled (runs in the server's task group)."""
        send, receive = anyio.create_memory_object_stream[tuple[str, SyncEvent]](1000)
        self._send = send
        try:
            async with send, receive:
                async for principal, _event in receive:
                    for uri in SYNC_URIS:
                        await self.bus.deliver_to(principal, ResourceUpdated(uri=uri))
                        await self._notify_legacy(principal, uri)
        finally:
            self._send = None

    async def _notify_legacy(self, principal: str, uri: str) -> None:
        for session, (owner, uris) in list(self._legacy.items()):
            if owner != principal or not any(u.split("?")[0] == uri for u in uris):
                continue
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a gone session: forget it
                self._legacy.pop(session, None)

    async def on_subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        # The request middleware has already set the workspace and watches its events.
        ws = CURRENT_WORKSPACE.get()
        if ws is not None:
            _, uris = self._legacy.setdefault(ctx.session, (ws.principal, set()))
            uris.add(str(params.uri))
        return EmptyResult()

    async def on_unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        entry = self._legacy.get(ctx.session)
        if entry is not None:
            entry[1].discard(str(params.uri))
        return EmptyResult()


def install_legacy_subscriptions(mcp: MCPServer, notifier: SyncNotifier) -> None:
    """`resources/subscribe` for 2025-11-25 clients.

    It is a spec method the 2026 revision removed; the SDK's own guidance for
    re-providing one for older clients is the low-level server's `add_request_handler`,
    which `MCPServer` does not expose (extensions may not bind spec methods). This is
    the one private attribute we use.
    """
    low = mcp._lowlevel_server
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, notifier.on_subscribe)
    low.add_request_handler(
        "resources/unsubscribe", UnsubscribeRequestParams, notifier.on_unsubscribe
    )
