"""Sync status for models and clients: the `sync_status` tool, sync resources, and
notifications to subscribers when runs change (both protocol eras).

* 2026-07-28 clients listen through `subscriptions/listen`; the server's subscription
  bus is a `PrincipalBus`, which remembers whose request opened each listen stream and
  hands a user's sync events to that user's streams only.
* 2025-11-25 clients send `resources/subscribe`; we remember which session asked for
  which URI (and for which principal) and send `notifications/resources/updated` to
  those sessions only.

Either way, one user's syncs never reach another user, not even as a timing signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.types import (
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import Field

from ...api.errors import TradavityError
from ..errors import UserError, describe_error
from ..sync.monitor import SyncEvent
from ..workspace import Workspace
from .read import CURRENT_WORKSPACE, JSON, _dump, current_workspace

__all__ = ["SYNC_URIS", "PrincipalBus", "SyncNotifier", "refresh_sync", "register_sync_tools"]

logger = logging.getLogger("tradavity_mcp.sync")

SYNC_URIS = ("tradavity://sync/runs", "tradavity://sync/recent", "tradavity://sync/status")

_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


async def refresh_sync(ws: Workspace) -> list[dict[str, Any]]:
    """Read connections and the sync log afresh; return each connection's status."""
    ws.ref.invalidate("connections")
    connections = await ws.ref.connections()
    brokers = {c.connection_id: c.broker_key for c in connections}
    try:
        ws.sync.ingest_log(await ws.api.sync_log(limit=50), brokers)
    except TradavityError as exc:
        logger.info("could not read the sync log: %s", exc)
    return [ws.sync.status(c.model_dump(mode="json")).to_json() for c in connections]


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
        """Start forwarding this workspace's sync events (once per workspace)."""
        if id(ws) in self._watched:
            return
        self._watched.add(id(ws))
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
                        await self.bus.publish_to(principal, ResourceUpdated(uri=uri))
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


def register_sync_tools(
    mcp: MCPServer, notifier: SyncNotifier, workspace: Callable[[Context], Workspace]
) -> None:
    # `resources/subscribe` is a spec method the 2026 revision removed; the SDK's own
    # guidance for re-providing one for older clients is the low-level server's
    # `add_request_handler`, which `MCPServer` does not expose (extensions may not bind
    # spec methods). This is the one private attribute we use.
    low = mcp._lowlevel_server
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, notifier.on_subscribe)
    low.add_request_handler(
        "resources/unsubscribe", UnsubscribeRequestParams, notifier.on_unsubscribe
    )

    @mcp.tool(title="Sync status", annotations=_READ)
    async def sync_status(
        ctx: Context,
        connection: Annotated[
            int | None, Field(description="Connection id; all connections if omitted")
        ] = None,
    ) -> CallToolResult:
        """Broker sync state per connection (idle, syncing, cooling_down, needs_reconnect,
        errored, disabled), last success, next scheduled sync and recent runs."""
        ws = workspace(ctx)
        try:
            statuses = await refresh_sync(ws)
        except (UserError, TradavityError) as exc:
            raise ToolError(describe_error(exc)) from None
        if connection is not None:
            statuses = [s for s in statuses if s["connection_id"] == connection]
            if not statuses:
                raise ToolError(f"no connection {connection}; call lookup name=connections")
        lines = []
        for s in statuses:
            line = f"{s['connection_id']} {s.get('broker')} ({s.get('account')}): {s['state']}"
            if "cooldown_seconds_left" in s:
                line += f", {s['cooldown_seconds_left']:.0f} s left"
            if "action" in s:
                line += f". {s['action']}"
            lines.append(line)
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines) or "No connections.")],
            structured_content={"connections": statuses},
        )

    @mcp.resource(
        "tradavity://sync/status",
        name="sync-status",
        title="Sync status",
        description="Per-connection sync state",
        mime_type=JSON,
    )
    async def status_resource() -> str:
        ws = current_workspace()
        try:
            return _dump({"connections": await refresh_sync(ws)})
        except (UserError, TradavityError) as exc:
            raise ResourceError(describe_error(exc)) from None

    @mcp.resource(
        "tradavity://sync/runs{?limit}",
        name="sync-runs",
        title="Sync runs",
        description="Latest event of each sync run, newest first (24 h)",
        mime_type=JSON,
    )
    async def runs_resource(limit: str | None = None) -> str:
        ws = current_workspace()
        n = _limit(limit, default=20)
        return _dump({"runs": [e.to_json() for e in ws.sync.runs(n)]})

    @mcp.resource(
        "tradavity://sync/recent{?limit}",
        name="sync-recent",
        title="Recent sync events",
        description="Sync events, newest first (default 50, max 200; 24 h)",
        mime_type=JSON,
    )
    async def recent_resource(limit: str | None = None) -> str:
        ws = current_workspace()
        n = _limit(limit, default=50)
        return _dump({"events": [e.to_json() for e in ws.sync.events(n)]})


def _limit(raw: str | None, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ResourceError("limit must be a whole number from 1 to 200")
    return int(raw)
