"""`/readyz`: whether this replica can do its work now.

`/healthz` says the process is alive; `/readyz` says whether what it shares with the
other replicas answers: the PostgreSQL store (`--store`) and Redis (`--redis`). A load
balancer sends traffic to a replica only while it is ready.

Each check is a fresh, short probe (a new PostgreSQL connection and `SELECT 1`; a Redis
`PING`), never the ledger's own connection, so a busy ledger does not read as down. A
check that does not answer within `CHECK_SECONDS` counts as down. What is down is named
with its URL, the password hidden (`writes.store_pg.redact_url`, as in the start
check's message), and the reason on one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..app import Backend

__all__ = ["CHECK_SECONDS", "readiness"]

#: How long one check may take before it counts as down.
CHECK_SECONDS = 3.0


async def readiness(backend: Backend) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when everything configured answers, else 503."""
    if backend.state is None:
        return 503, {"ready": False, "down": {"server": {"error": "starting"}}}
    checks: dict[str, Any] = {}
    store_url = backend.settings.store_url
    if store_url is not None:
        checks["store"] = await _check(store_url, lambda: _postgres(store_url))
    if backend.redis is not None and backend.settings.redis_url is not None:
        redis = backend.redis
        checks["redis"] = await _check(backend.settings.redis_url, lambda: _redis(redis))
    down = {name: check for name, check in checks.items() if "error" in check}
    if down:
        return 503, {"ready": False, "down": down, "checks": checks}
    return 200, {"ready": True, "checks": checks}


async def _check(url: str, probe: Any) -> dict[str, str]:
    from ..writes.store_pg import redact_url  # noqa: PLC0415 (psycopg only when used)

    shown = {"url": redact_url(url)}
    try:
        with anyio.fail_after(CHECK_SECONDS):
            await probe()
    except TimeoutError:
        return {**shown, "error": f"no answer within {CHECK_SECONDS:g} s"}
    except Exception as exc:  # any failure of a probe means down
        return {**shown, "error": _one_line(exc, url)}
    return {**shown, "status": "ok"}


async def _postgres(url: str) -> None:
    import psycopg  # noqa: PLC0415 (only with --store)

    def probe() -> None:
        with psycopg.connect(url, connect_timeout=max(1, round(CHECK_SECONDS))) as conn:
            conn.execute("SELECT 1")

    await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)


async def _redis(redis: Redis) -> None:
    await redis.ping()


def _one_line(exc: BaseException, url: str) -> str:
    text = " ".join(str(exc).split())
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
