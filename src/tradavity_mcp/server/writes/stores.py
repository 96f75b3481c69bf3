"""Which write ledger a server opens: PostgreSQL with `--store`, else the SQLite file.

The PostgreSQL driver is imported only when a store is configured, so a laptop's start
does not pay for it.
"""

from __future__ import annotations

import time

from ...api.clock import Now
from ...settings import Settings
from .ledger import Ledger

__all__ = ["is_postgres_url", "open_ledger"]


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(("postgresql://", "postgres://"))


def open_ledger(settings: Settings, *, clock: Now = time.time) -> Ledger:
    """The server's ledger: on PostgreSQL with `--store`, else the SQLite file."""
    if settings.store_url is not None and is_postgres_url(settings.store_url):
        from .store_pg import PgLedger  # noqa: PLC0415 (the driver only when used)

        return PgLedger(settings.store_url, clock=clock)
    return Ledger(settings.ledger_path, clock=clock)
