"""Which OAuth store a server (or `tradavity-mcp grants`) opens: PostgreSQL with
`--store`, shared by replicas, else the SQLite file in the state directory.

The PostgreSQL driver is imported only when a store is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..writes.stores import is_postgres_url
from .store import OAuthStore

__all__ = ["STORE_FILE", "open_oauth_store", "sqlite_path"]

#: The SQLite store's file name, in the state directory.
STORE_FILE = "oauth.sqlite3"


def sqlite_path(state_dir: Path, store_path: Path | None = None) -> Path:
    return store_path or state_dir / STORE_FILE


def open_oauth_store(
    *,
    store_url: str | None,
    state_dir: Path,
    store_path: Path | None = None,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> OAuthStore:
    """The OAuth store: on PostgreSQL with `--store` (a postgresql:// URL), else SQLite
    (`store_path`, by default `oauth.sqlite3` in the state directory). `options`: its
    lifetimes and bounds (`access_ttl`, `max_pending`, ...)."""
    if store_url is not None and is_postgres_url(store_url):
        from .store_pg import PgOAuthStore  # noqa: PLC0415 (the driver only when used)

        return PgOAuthStore(store_url, clock=clock, **options)
    return OAuthStore(sqlite_path(state_dir, store_path), clock=clock, **options)
