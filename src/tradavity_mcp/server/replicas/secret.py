"""The SDK's request-state keys from the server secret (`TRADAVITY_MCP_SECRET_KEY`).

A 2026-07-28 multi-round-trip request (`archive_trade`'s confirmation, the client's
roots for a screenshot path) comes back with the state the server sealed in its first
round, and behind a load balancer it may come back to another replica. Every replica
given the same secret derives the same key, so any of them opens what another sealed
(the server's name, the audience bound into the state, is the same everywhere too).

The key is derived from the secret for this purpose alone (HKDF-SHA256), so the state's
key says nothing about the one OAuth derives from the same secret. Without a secret the
SDK's per-process key stands: one process, or replicas that never see a second round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.server.mcpserver import RequestStateSecurity

if TYPE_CHECKING:
    from ...settings import Settings

__all__ = ["request_state_security"]

_PURPOSE = b"tradavity-mcp request-state v1"


def request_state_security(settings: Settings) -> RequestStateSecurity | None:
    """The request-state policy every replica with this secret shares, or None (the
    SDK's key of this process) when no secret is set."""
    if settings.secret_key is None:
        return None
    secret = settings.secret_key.get_secret_value().encode("utf-8")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret)
    return RequestStateSecurity(keys=[key])
