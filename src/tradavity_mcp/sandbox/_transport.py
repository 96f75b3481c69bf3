"""In-process access to the sandbox through httpx2, with the drop fault made real."""

from __future__ import annotations

import httpx2
from starlette.applications import Starlette

from ._pipeline import Dropped

__all__ = ["SandboxTransport"]


class SandboxTransport(httpx2.AsyncBaseTransport):
    """`ASGITransport` over the sandbox app; a dropped-after-commit response surfaces as
    `httpx2.RemoteProtocolError`, as a connection dying mid-response would."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._inner = httpx2.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except Dropped:
            raise httpx2.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from None

    async def aclose(self) -> None:
        await self._inner.aclose()
