"""`tradavity-mcp grants list|revoke`: the grants users made on the consent page, on the
server's store: PostgreSQL with `--store` (shared by replicas; a revocation is seen by
every replica at once), else the state directory's SQLite file (the server may be
running: SQLite is shared safely)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..writes.stores import is_postgres_url
from .store import OAuthStore, OAuthStoreUnavailable
from .stores import open_oauth_store, sqlite_path

__all__ = ["list_grants", "revoke_all", "revoke_grant"]


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) + "Z" if at else "never"


def _with_store(
    state_dir: Path,
    store_url: str | None,
    out: TextIO | None,
    missing: str,
    missing_code: int,
    act: Callable[[OAuthStore, TextIO], int],
) -> int:
    """Run `act` on the configured store; a missing SQLite file or an unreachable
    PostgreSQL is one line, not a traceback."""
    out = out or sys.stdout
    if not is_postgres_url(store_url):
        path = sqlite_path(state_dir)
        if not path.exists():
            print(missing.replace("{where}", f"{path} does not exist"), file=out)
            return missing_code
    try:
        store = open_oauth_store(store_url=store_url, state_dir=state_dir)
    except OAuthStoreUnavailable as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 1
    try:
        return act(store, out)
    except OAuthStoreUnavailable as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def list_grants(
    state_dir: Path,
    *,
    store_url: str | None = None,
    include_revoked: bool = False,
    out: TextIO | None = None,
) -> int:
    def act(store: OAuthStore, out: TextIO) -> int:
        grants = store.grants(include_revoked=include_revoked)
        if not grants:
            print("no grants", file=out)
            return 0
        for g in grants:
            state = (
                f"revoked {_when(g.revoked)}" if g.revoked else f"last used {_when(g.last_used)}"
            )
            print(
                f"{g.id}  {g.user_label}  via {g.client_name}  created {_when(g.created)}  "
                f"{state}  scopes: {len(g.scopes)}",
                file=out,
            )
        return 0

    missing = "no grants: {where} (no user has connected with OAuth)"
    return _with_store(state_dir, store_url, out, missing, 0, act)


def revoke_grant(
    state_dir: Path, grant_id: str, *, store_url: str | None = None, out: TextIO | None = None
) -> int:
    def act(store: OAuthStore, out: TextIO) -> int:
        if not store.revoke(grant_id):
            print(f"no live grant {grant_id} (see `tradavity-mcp grants list`)", file=out)
            return 1
        print(f"revoked {grant_id}: its tokens stop working now", file=out)
        return 0

    return _with_store(state_dir, store_url, out, f"no grant {grant_id}: {{where}}", 1, act)


def revoke_all(state_dir: Path, *, store_url: str | None = None, out: TextIO | None = None) -> int:
    """End every grant (e.g. before changing TRADAVITY_MCP_SECRET_KEY): users connect again."""

    def act(store: OAuthStore, out: TextIO) -> int:
        count = store.revoke_all()
        print(f"revoked {count} grant{'s' if count != 1 else ''}: users connect again", file=out)
        return 0

    return _with_store(state_dir, store_url, out, "no grants: {where}", 0, act)
