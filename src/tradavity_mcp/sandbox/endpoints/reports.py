"""Stats (summary, by symbol, by strategy) and the calendar."""

from __future__ import annotations

from .. import _trades as T
from .._pipeline import Ctx, Result

__all__ = ["calendar", "stats_by_strategy", "stats_by_symbol", "stats_summary"]


def _stats(ctx: Ctx, kind: str) -> Result:
    return Result(data=T.stats(ctx.store, ctx.uid, ctx.tz, ctx.now, kind, ctx.params))


async def stats_summary(ctx: Ctx) -> Result:
    return _stats(ctx, "summary")


async def stats_by_symbol(ctx: Ctx) -> Result:
    return _stats(ctx, "by-symbol")


async def stats_by_strategy(ctx: Ctx) -> Result:
    return _stats(ctx, "by-strategy")


async def calendar(ctx: Ctx) -> Result:
    return Result(data=T.calendar(ctx.store, ctx.uid, ctx.tz, ctx.now, ctx.params))
