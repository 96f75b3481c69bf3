"""`tradavity-mcp grants list|revoke`: the grants users made on the consent page, from
the server's state directory (the server may be running: SQLite is shared safely)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from .endpoints import STORE_FILE
from .store import OAuthStore

__all__ = ["list_grants", "revoke_grant"]


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) + "Z" if at else "never"


def list_grants(state_dir: Path, *, include_revoked: bool = False, out: TextIO = sys.stdout) -> int:
    path = state_dir / STORE_FILE
    if not path.exists():
        print(f"no grants: {path} does not exist (no user has connected with OAuth)", file=out)
        return 0
    store = OAuthStore(path)
    try:
        grants = store.grants(include_revoked=include_revoked)
    finally:
        store.close()
    if not grants:
        print("no grants", file=out)
        return 0
    for g in grants:
        state = f"revoked {_when(g.revoked)}" if g.revoked else f"last used {_when(g.last_used)}"
        print(
            f"{g.id}  {g.user_label}  via {g.client_name}  created {_when(g.created)}  "
            f"{state}  scopes: {len(g.scopes)}",
            file=out,
        )
    return 0


def revoke_grant(state_dir: Path, grant_id: str, *, out: TextIO = sys.stdout) -> int:
    path = state_dir / STORE_FILE
    if not path.exists():
        print(f"no grant {grant_id}: {path} does not exist", file=out)
        return 1
    store = OAuthStore(path)
    try:
        done = store.revoke(grant_id)
    finally:
        store.close()
    if not done:
        print(f"no live grant {grant_id} (see `tradavity-mcp grants list`)", file=out)
        return 1
    print(f"revoked {grant_id}: its tokens stop working now", file=out)
    return 0
