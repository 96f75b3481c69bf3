"""Stats (summary, by symbol, by strategy) and the calendar."""

from __future__ import annotations

from typing import Any

from . import _trades as T
from ._http import route
from ._pipeline import Ctx, Result

__all__: list[str] = []

for _kind in ("summary", "by-symbol", "by-strategy"):

    def _make(kind: str) -> Any:
        async def handler(ctx: Ctx) -> Result:
            return Result(data=T.stats(ctx.store, ctx.uid, ctx.tz, ctx.now, kind, ctx.params))

        return handler

    route("GET", f"/stats/{_kind}", "read:trades")(_make(_kind))


@route("GET", "/calendar", "read:trades")
async def calendar(ctx: Ctx) -> Result:
    return Result(data=T.calendar(ctx.store, ctx.uid, ctx.tz, ctx.now, ctx.params))
