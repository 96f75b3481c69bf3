"""Each connection's sync status, read afresh from Tradavity."""

from __future__ import annotations

import logging
from typing import Any

from ...api.errors import TradavityError
from ..workspace import Workspace

__all__ = ["refresh_sync"]

logger = logging.getLogger("tradavity_mcp.sync")


async def refresh_sync(ws: Workspace) -> list[dict[str, Any]]:
    """Read connections and the sync log afresh; return each connection's status."""
    ws.ref.invalidate("connections")
    connections = await ws.ref.connections()
    brokers = {c.connection_id: c.broker_key for c in connections}
    try:
        ws.sync.ingest_log(await ws.api.sync_log(limit=50), brokers)
    except TradavityError as exc:
        logger.info("could not read the sync log: %s", exc)
    return [(await ws.sync.status(c.model_dump(mode="json"))).to_json() for c in connections]
