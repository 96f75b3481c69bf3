"""The `sync_status` tool (running a sync is the journaling tool `trigger_sync`)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from ..errors import reported
from ..sync.status import refresh_sync
from ..workspace import current_workspace
from .read import Whole

__all__ = ["sync_status"]


async def sync_status(
    connection: Annotated[
        int | None, Field(description="Connection id; all connections if omitted"), Whole
    ] = None,
) -> CallToolResult:
    """Broker sync state per connection: last success, next scheduled sync, recent runs."""
    with reported():
        ws = current_workspace()
        statuses = await refresh_sync(ws)
    clock = await ws.local_clock()
    statuses = clock.stamp(statuses)
    if connection is not None:
        statuses = [s for s in statuses if s["connection_id"] == connection]
        if not statuses:
            raise ToolError(f"no connection {connection}; call lookup name=connections")
    lines = []
    for s in statuses:
        line = f"{s['connection_id']} {s.get('broker')} ({s.get('account')}): {s['state']}"
        if "cooldown_seconds_left" in s:
            line += f", {s['cooldown_seconds_left']:.0f} s left"
        times = [
            f"{label} {s[key]}"
            for label, key in (
                ("last success", "last_success_at_local"),
                ("next scheduled sync", "next_scheduled_sync_at_local"),
            )
            if key in s
        ]
        if times:
            line += f" ({'; '.join(times)})"
        if "action" in s:
            line += f". {s['action']}"
        lines.append(line)
    if not clock.known:
        lines.append(f"({clock.note}.)")
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines) or "No connections.")],
        structured_content={"connections": statuses},
    )
