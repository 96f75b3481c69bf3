"""Deterministic idempotency keys and principals.

A logical write is named by (principal, call id, tool, step). The key sent to the API is
a pure function of those four, so a retry, a re-dispatched tool call or a restarted
process always sends the same key for the same write, and two principals never share
one. Keys are `tm1_` + 43 base64url characters of a SHA-256 digest: 47 characters of
`[A-Za-z0-9_-]`, inside the API's 1-64 limit.
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = ["IDEMPOTENCY_KEY_PATTERN", "derive_key", "principal_for_key"]

IDEMPOTENCY_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

_KEY_PREFIX = "tm1_"


def _digest(*parts: str) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        # Length-prefix every part so ("ab", "c") and ("a", "bc") can never collide.
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


def derive_key(principal: str, call_id: str, tool: str, step: str) -> str:
    """The idempotency key for one logical write."""
    digest = _digest("tradavity-mcp/idempotency/v1", principal, call_id, tool, step)
    return _KEY_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def principal_for_key(api_key: str) -> str:
    """A stable, non-reversible name for the holder of an API key.

    The API caches idempotent responses per key, so the key itself is the right
    principal; we only ever keep this one-way fingerprint of it.
    """
    return "p_" + _digest("tradavity-mcp/principal/v1", api_key).hex()[:24]
