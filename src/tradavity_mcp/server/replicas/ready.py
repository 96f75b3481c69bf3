"""`/readyz`: whether this replica can do its work now.

`/healthz` says the process is alive; `/readyz` says whether what it shares with the
other replicas answers: the PostgreSQL store (`--store`) and Redis (`--redis`). A load
balancer sends traffic to a replica only while it is ready.

Each check is a fresh, short probe (a new PostgreSQL connection and `SELECT 1`; a Redis
`PING`), never the ledger's own connection, so a busy ledger does not read as down. A
check that does not answer within `CHECK_SECONDS` counts as down.

The endpoint is public (load balancers probe it without a token), so its body names only
what is down (`store`, `redis`), never a host, user or error text. The details (the URL
without its password, as in the start check's message, and the reason on one line) go to
the log, once each time a check changes between up and down.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..app import Backend

__all__ = ["CHECK_SECONDS", "readiness"]

logger = logging.getLogger("tradavity_mcp.ready")

#: How long one check may take before it counts as down.
CHECK_SECONDS = 3.0


async def readiness(backend: Backend) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when everything configured answers, else 503."""
    if backend.state is None:
        return 503, {"ready": False, "down": ["server"], "checks": {"server": "starting"}}
    checks: dict[str, str] = {}
    store_url = backend.settings.store_url
    if store_url is not None:
        checks["store"] = await _check(backend, "store", store_url, lambda: _postgres(store_url))
    if backend.redis is not None and backend.settings.redis_url is not None:
        redis = backend.redis
        checks["redis"] = await _check(
            backend, "redis", backend.settings.redis_url, lambda: _redis(redis)
        )
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        return 503, {"ready": False, "down": down, "checks": checks}
    return 200, {"ready": True, "checks": checks}


async def _check(backend: Backend, name: str, url: str, probe: Any) -> str:
    """ "ok" or "down"; a change either way is logged once, with what and why."""
    reason: str | None = None
    try:
        with anyio.fail_after(CHECK_SECONDS):
            await probe()
    except TimeoutError:
        reason = f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # any failure of a probe means down
        from ..writes.store_pg import described  # noqa: PLC0415 (psycopg only when used)

        reason = described(exc, url)
    was_down = name in backend.not_ready
    if reason is not None and not was_down:
        from ..writes.store_pg import redact_url  # noqa: PLC0415 (psycopg only when used)

        backend.not_ready.add(name)
        logger.warning("not ready: %s %s is down: %s", name, redact_url(url), reason)
    elif reason is None and was_down:
        backend.not_ready.discard(name)
        logger.warning("ready again: %s answers", name)
    return "ok" if reason is None else "down"


async def _postgres(url: str) -> None:
    import psycopg  # noqa: PLC0415 (only with --store)

    def probe() -> None:
        with psycopg.connect(url, connect_timeout=max(1, round(CHECK_SECONDS))) as conn:
            conn.execute("SELECT 1")

    await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)


async def _redis(redis: Redis) -> None:
    await redis.ping()
