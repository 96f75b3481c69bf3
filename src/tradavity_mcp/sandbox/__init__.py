"""The Tradavity API sandbox: a contract-faithful emulator of the Public API v1.

It is what a newcomer runs first (`tradavity-mcp --sandbox`, `tradavity-mcp demo`), the
backend of the test suite, and the target of fault drills. Real v1 paths under
`/api/v1`, the envelope, auth, scopes, rate limits, idempotency, and seeded demo data.

Shapes the reference leaves open, as built here:

* auto-sync connections: `connection_id, broker_key, broker_name, account_id,
  account_name, is_active, status (active | token_expired), token_status (valid |
  expired), last_sync_at, next_sync_at` (scheduled every 15 minutes);
* sync log rows: `log_id, connection_id, broker_key, trigger (manual | schedule),
  status (success | failed), started_at, finished_at, imported, skipped, total_fetched,
  errors[], message`;
* idempotency: successful responses are cached for 24 h per key and Idempotency-Key;
  a failed request is not cached, so its retry runs afresh. Writes without the header
  are accepted (as the reference's own examples do) and not deduplicated.
"""

from ._app import SandboxConfig, SandboxState, create_app
from ._clock import Clock, ManualClock, ScaledClock, SystemClock
from ._faults import FaultSpec
from ._seed import DEMO_KEY, EXPIRED_KEY, FREE_KEY, READONLY_KEY, REVOKED_KEY, SECOND_PRO_KEY
from ._serve import serve_in_thread
from ._transport import SandboxTransport

__all__ = [
    "DEMO_KEY",
    "EXPIRED_KEY",
    "FREE_KEY",
    "READONLY_KEY",
    "REVOKED_KEY",
    "SECOND_PRO_KEY",
    "Clock",
    "FaultSpec",
    "ManualClock",
    "SandboxConfig",
    "SandboxState",
    "SandboxTransport",
    "ScaledClock",
    "SystemClock",
    "create_app",
    "serve_in_thread",
]
