"""Strategies with their setups and confirmation templates."""

from __future__ import annotations

from ._http import owned, path_int, route
from ._pipeline import Ctx, Result

__all__: list[str] = []


@route("GET", "/strategies", "read:strategies")
async def list_strategies(ctx: Ctx) -> Result:
    rows = [
        {k: v for k, v in s.items() if k != "setups"} | {"setup_count": len(s["setups"])}
        for s in ctx.store.all("strategy", ctx.uid)
    ]
    return Result(data={"strategies": rows})


@route("GET", "/strategies/{id}", "read:strategies")
async def get_strategy(ctx: Ctx) -> Result:
    return Result(data={"strategy": owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")})


@route("GET", "/strategies/{id}/setups", "read:strategies")
async def get_setups(ctx: Ctx) -> Result:
    return Result(
        data={"setups": owned(ctx, "strategy", path_int(ctx, "id"), "Strategy")["setups"]}
    )
