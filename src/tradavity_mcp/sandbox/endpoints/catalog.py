"""Catalog endpoints: /me, /usage, /brokers, /instruments, /prop-firm-presets, /scopes,
/emotions."""

from __future__ import annotations

from collections import deque

from .._catalog import BROKERS, EMOTIONS, INSTRUMENTS, PRESETS, SCOPE_CATALOG
from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, num
from .common import param, path_int, storage_quota

__all__ = ["brokers", "emotions", "instruments", "me", "preset", "presets", "scopes", "usage"]


async def me(ctx: Ctx) -> Result:
    shots = [s for s in ctx.store.all("screenshot", ctx.uid) if not s.get("archived")]
    used = sum(s["file_size"] for s in shots)
    return Result(
        data={
            "user": {"id": ctx.uid, "name": ctx.user["name"], "email": ctx.user["email"]},
            "plan": {"tier": ctx.user["plan"], "name": ctx.user["plan"].title()},
            "preferences": {
                "timezone": ctx.tz,
                "currency": ctx.user["currency"],
                "week_start": ctx.user["week_start"],
            },
            "storage": {"used_bytes": used, "quota_bytes": storage_quota(ctx.user)},
            "key": {
                "name": ctx.key["name"],
                "prefix": ctx.key["prefix"],
                "scopes": sorted(ctx.key["scopes"]),
                "expires_at": ctx.key.get("expires_at"),
            },
            "rate_tier": ctx.user["plan"],
        }
    )


async def usage(ctx: Ctx) -> Result:
    hits = ctx.state.usage.get(ctx.key["key_id"], deque())
    while hits and hits[0][0] <= ctx.now - 86400:
        hits.popleft()
    paths: dict[str, int] = {}
    for _, path, _ in hits:
        paths[path] = paths.get(path, 0) + 1
    top = sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    shots = [s for s in ctx.store.all("screenshot", ctx.uid) if not s.get("archived")]
    return Result(
        data={
            "key": {"name": ctx.key["name"], "prefix": ctx.key["prefix"]},
            "last_24h": {
                "requests": len(hits),
                "errors": sum(1 for _, _, status in hits if status >= 400),
                "last_60s": sum(1 for at, _, _ in hits if at > ctx.now - 60),
            },
            "top_paths": [{"path": p, "requests": n} for p, n in top],
            "storage": {
                "used_bytes": sum(s["file_size"] for s in shots),
                "quota_bytes": storage_quota(ctx.user),
                "files": len(shots),
            },
        }
    )


async def brokers(ctx: Ctx) -> Result:
    return Result(data={"brokers": BROKERS})


async def instruments(ctx: Ctx) -> Result:
    rows = INSTRUMENTS
    if ctx.params.get("asset_type"):
        kinds = ("futures", "forex", "stocks", "crypto", "options")
        if ctx.params["asset_type"] not in kinds:
            raise Invalid({"asset_type": "is not a known asset type"}, allowed=list(kinds))
        rows = [r for r in rows if r["asset_type"] == ctx.params["asset_type"]]
    if ctx.params.get("exchange"):
        rows = [r for r in rows if r["exchange"].casefold() == ctx.params["exchange"].casefold()]
    if ctx.params.get("search"):
        q = ctx.params["search"].casefold()
        rows = [r for r in rows if q in r["symbol"].casefold() or q in r["name"].casefold()]
    return Result(
        data={
            "instruments": rows[:500],
            "count": min(len(rows), 500),
            "total_count": len(rows),
            "has_more": len(rows) > 500,
        }
    )


async def presets(ctx: Ctx) -> Result:
    rows = PRESETS
    firms = sorted({p["firm_key"] for p in PRESETS})
    if ctx.params.get("firm_key"):
        if ctx.params["firm_key"] not in firms:
            raise Invalid({"firm_key": "is not an active prop firm"}, allowed=firms)
        rows = [p for p in rows if p["firm_key"] == ctx.params["firm_key"]]
    for name, allowed in (
        ("market_type", ("futures", "forex", "stocks", "crypto")),
        ("phase", ("evaluation", "funded", "live")),
    ):
        if ctx.params.get(name):
            if ctx.params[name] not in allowed:
                raise Invalid({name: "is not allowed"}, allowed=list(allowed))
            rows = [p for p in rows if p[name] == ctx.params[name]]
    if ctx.params.get("account_size"):
        size = param(ctx, "account_size", num())
        rows = [p for p in rows if p["account_size"] == size]
    return Result(data={"presets": rows[:500], "total_count": len(rows)})


async def preset(ctx: Ctx) -> Result:
    pid = path_int(ctx, "id")
    found = next((p for p in PRESETS if p["preset_id"] == pid), None)
    if found is None:
        raise ApiError(404, "not_found", "Preset not found.")
    return Result(data={"preset": found})


async def scopes(ctx: Ctx) -> Result:
    rows = []
    for resource, write, description in SCOPE_CATALOG:
        rows.append(
            {
                "scope": f"read:{resource}",
                "pair": f"write:{resource}" if write else None,
                "description": description,
            }
        )
        if write:
            rows.append(
                {
                    "scope": f"write:{resource}",
                    "pair": f"read:{resource}",
                    "description": description,
                }
            )
    return Result(data={"scopes": rows})


async def emotions(ctx: Ctx) -> Result:
    return Result(data={"emotions": [{"value": e, "label": e.title()} for e in EMOTIONS]})
