"""The OAuth store as the server uses it: every store call in a worker thread, never on
the event loop.

`OAuthStore` and `PgOAuthStore` are synchronous; on PostgreSQL a call is a round trip,
and a statement may wait for a row another replica has locked (a revocation in
progress, say) up to the store's lock timeout. Every bearer token is checked against the
store, so on the loop that wait would stall every request of the process. The same rules
as the ledger's facade (`writes.offload`): a call whose thread has started finishes,
however its caller is cancelled; a revocation is shielded so it happens once asked for;
the store has a few worker threads of its own (`STORE_THREADS`).
"""

from __future__ import annotations

from typing import Any

import anyio

from ..writes.offload import STORE_THREADS, Offload
from .store import Checked, Code, Grant, Kind, OAuthStore, Pending, TokenPair

__all__ = ["AsyncOAuthStore"]


class AsyncOAuthStore:
    """An `OAuthStore` (SQLite or `PgOAuthStore`) whose calls are awaited, off the loop."""

    def __init__(self, store: OAuthStore, *, tokens: int = STORE_THREADS) -> None:
        #: The synchronous store (start-up checks, `tradavity-mcp grants`, tests).
        self.sync = store
        self._run = Offload(tokens)

    @property
    def where(self) -> str:
        """The store as it may be named (a file, or a URL without its password)."""
        return self.sync.where

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The store's own worker-thread tokens."""
        return self._run.limiter

    async def aclose(self) -> None:
        await self._run.shielded(self.sync.close)

    # clients

    async def add_client(
        self, client_id: str, info: dict[str, Any], registered_from: str | None = None
    ) -> None:
        await self._run(self.sync.add_client, client_id, info, registered_from)

    async def client(self, client_id: str) -> dict[str, Any] | None:
        return await self._run(self.sync.client, client_id)

    async def proven(self, registered_from: str) -> bool:
        return await self._run(self.sync.proven, registered_from)

    # consent requests

    async def add_pending(self, pending: Pending) -> str:
        return await self._run(self.sync.add_pending, pending)

    async def pending(self, request_id: str) -> Pending | None:
        return await self._run(self.sync.pending, request_id)

    async def check_pending(self, request_id: str, checked: Checked) -> bool:
        return await self._run(self.sync.check_pending, request_id, checked)

    async def checked(self, request_id: str) -> Checked | None:
        return await self._run(self.sync.checked, request_id)

    async def take_pending(self, request_id: str, browser: str | None = None) -> bool:
        return await self._run(self.sync.take_pending, request_id, browser)

    # grants and codes

    async def add_grant(self, pending: Pending, checked: Checked) -> str:
        return await self._run(self.sync.add_grant, pending, checked)

    async def code(self, code: str) -> Code | None:
        return await self._run(self.sync.code, code)

    async def use_code(self, code: str) -> bool:
        return await self._run(self.sync.use_code, code)

    async def grant(self, grant_id: str) -> Grant | None:
        return await self._run(self.sync.grant, grant_id)

    async def grants(self, *, include_revoked: bool = False) -> list[Grant]:
        return await self._run(self.sync.grants, include_revoked=include_revoked)

    async def live_grants_of(self, principal: str) -> list[Grant]:
        return await self._run(self.sync.live_grants_of, principal)

    async def unnamed_grants(self) -> list[tuple[str, bytes]]:
        return await self._run(self.sync.unnamed_grants)

    async def name_grant(self, grant_id: str, principal: str) -> None:
        await self._run(self.sync.name_grant, grant_id, principal)

    async def revoke(self, grant_id: str) -> bool:
        return await self._run.shielded(self.sync.revoke, grant_id)

    async def revoke_all(self) -> int:
        return await self._run.shielded(self.sync.revoke_all)

    async def touch(self, grant_id: str) -> None:
        await self._run(self.sync.touch, grant_id)

    # tokens

    async def issue(self, grant_id: str) -> TokenPair:
        return await self._run(self.sync.issue, grant_id)

    async def token(self, token: str, kind: Kind) -> tuple[str, float, float | None] | None:
        return await self._run(self.sync.token, token, kind)

    async def rotate(self, token: str, grant_id: str) -> TokenPair | None:
        return await self._run(self.sync.rotate, token, grant_id)
