"""The v1 endpoints. Each handler gets an authorized `Ctx` and runs inside a transaction."""

from __future__ import annotations

import base64
import random
import re
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _trades as T
from ._catalog import BROKERS, EMOTIONS, INSTRUMENTS, PRESETS, SCOPE_CATALOG
from ._pipeline import Ctx, Result, Route
from ._validate import ApiError, Invalid, check_body, dt, enum, integer, num, string

__all__ = ["ROUTES"]

GRADES = ("A+", "A", "B", "C", "F")
PRICE = num(hi=9_999_999_999.99, lo=0.00000001, nullable=True)
PNL = num(-999_999_999_999_999.99, 999_999_999_999_999.99)

_QUALITATIVE = {
    "trade_quality_grade": enum(GRADES),
    "emotional_state": string(1, 100),
    "bias": enum(("Bullish", "Bearish", "Neutral")),
    "confidence_level": integer(1, 10, nullable=True),
    "market_condition": enum(("trending", "ranging", "choppy", "breakout")),
    "trading_session": enum(("asian", "london", "newyork", "overlap")),
    "exit_type": enum(
        (
            "Take Profit",
            "Stop Loss",
            "Trailing Stop",
            "Partial / Scale Out",
            "Breakeven",
            "Time-Based",
            "Manual",
        )
    ),
    "setup_quality": string(0, 100),
    "news_events": string(),
    "volume": enum(
        ("very_low", "low", "below_average", "average", "above_average", "high", "very_high")
    ),
    "strategy_id": integer(1, nullable=True),
    "setup_id": integer(1, nullable=True),
    "sl_price": PRICE,
    "tp_price": PRICE,
    "thought_process": string(),
    "mistakes_made": string(),
    "learning_notes": string(),
    "general_notes": string(),
}
TRADE_CREATE = {
    "account_id": integer(1),
    "trade_date": dt(),
    "symbol": string(1, 50, nullable=False),
    "direction": enum(("long", "short"), nullable=False),
    "net_pnl": PNL,
    "gross_pnl": num(-999_999_999_999_999.99, 999_999_999_999_999.99, nullable=True),
    "fees": num(-999_999_999_999_999.99, 999_999_999_999_999.99, nullable=True),
    "quantity": num(0, 9_999_999_999.99, nullable=True),
    "multiplier": num(-99_999_999.99, 99_999_999.99, nullable=True),
    "asset_type": enum(("futures", "forex", "stocks", "options", "crypto")),
    "asset_config": lambda v: v,
    "total_points": num(-999_999_999_999_999.99, 999_999_999_999_999.99, nullable=True),
    "rr_expected": num(-99_999_999.99, 99_999_999.99, nullable=True),
    "rr_realized": num(-99_999_999.99, 99_999_999.99, nullable=True),
    "holding_time": integer(0, 2_147_483_647, nullable=True),
    **_QUALITATIVE,
}

_routes: list[Route] = []
Handler = Callable[[Ctx], Awaitable[Result]]


def route(method: str, path: str, scope: str | None) -> Callable[[Handler], Handler]:
    pattern = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path))

    def register(fn: Handler) -> Handler:
        _routes.append(Route(method, pattern, fn, scope))
        return fn

    return register


def _param(ctx: Ctx, name: str, check: Any, default: Any = None) -> Any:
    """A query or form value through a check; a bad one is a 400 naming it."""
    raw = ctx.params.get(name, ctx.form.get(name, default))
    if raw is None:
        return None
    try:
        return check(raw)
    except ValueError as exc:
        raise Invalid({name: str(exc)}) from None


def _color(value: Any) -> Any:
    if not isinstance(value, str) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
        raise ValueError("must be a #RRGGBB colour")
    return value


def _int(ctx: Ctx, name: str) -> int:
    raw = ctx.path[name]
    if not raw.isdigit():
        raise ApiError(404, "not_found", "Not found.")
    return int(raw)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trade(ctx: Ctx, *, archived_ok: bool = False) -> dict[str, Any]:
    number = _int(ctx, "n")
    for trade in ctx.store.all("trade", ctx.uid):
        if trade["trade_number"] == number:
            if trade.get("archived") and not archived_ok:
                raise ApiError(404, "not_found", "Trade is archived.")
            return trade
    raise ApiError(404, "not_found", "Trade not found.")


def _owned(ctx: Ctx, kind: str, doc_id: int, what: str) -> dict[str, Any]:
    doc = ctx.store.get(kind, doc_id, ctx.uid)
    if doc is None:
        raise ApiError(404, "not_found", f"{what} not found.")
    return doc


def _page(
    ctx: Ctx, rows: list[Any], default: int = 50, cap: int = 500
) -> tuple[list[Any], dict[str, Any]]:
    limit = _param(ctx, "limit", integer(1, cap), default)
    offset = _param(ctx, "offset", integer(0), 0)
    return rows[offset : offset + limit], {
        "total_count": len(rows),
        "has_more": offset + limit < len(rows),
    }


# --- catalog -------------------------------------------------------------------------------


@route("GET", "/me", None)
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
            "storage": {"used_bytes": used, "quota_bytes": (5 if ctx.pro else 1) * 1024**3},
            "key": {
                "name": ctx.key["name"],
                "prefix": ctx.key["prefix"],
                "scopes": sorted(ctx.key["scopes"]),
                "expires_at": ctx.key.get("expires_at"),
            },
            "rate_tier": ctx.user["plan"],
        }
    )


@route("GET", "/usage", "read:catalog")
async def usage(ctx: Ctx) -> Result:
    log = [r for r in ctx.state.request_log][-500:]
    paths: dict[str, int] = {}
    for r in log:
        paths[r.path] = paths.get(r.path, 0) + 1
    top = sorted(paths.items(), key=lambda kv: -kv[1])[:5]
    return Result(
        data={
            "last_24h": {"requests": len(log), "errors": sum(1 for r in log if r.status >= 400)},
            "top_paths": [{"path": p, "requests": n} for p, n in top],
        }
    )


@route("GET", "/brokers", "read:catalog")
async def brokers(ctx: Ctx) -> Result:
    return Result(data={"brokers": BROKERS})


@route("GET", "/instruments", "read:catalog")
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


@route("GET", "/prop-firm-presets", "read:catalog")
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
        size = _param(ctx, "account_size", num())
        rows = [p for p in rows if p["account_size"] == size]
    return Result(data={"presets": rows[:500], "total_count": len(rows)})


@route("GET", "/prop-firm-presets/{id}", "read:catalog")
async def preset(ctx: Ctx) -> Result:
    pid = _int(ctx, "id")
    found = next((p for p in PRESETS if p["preset_id"] == pid), None)
    if found is None:
        raise ApiError(404, "not_found", "Preset not found.")
    return Result(data={"preset": found})


@route("GET", "/scopes", "read:catalog")
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


@route("GET", "/emotions", "read:catalog")
async def emotions(ctx: Ctx) -> Result:
    return Result(data={"emotions": [{"value": e, "label": e.title()} for e in EMOTIONS]})


# --- trades --------------------------------------------------------------------------------


@route("GET", "/trades", "read:trades")
async def list_trades(ctx: Ctx) -> Result:
    limit = _param(ctx, "limit", integer(1, 200), 50)
    trades = T.filter_trades(ctx.store, ctx.uid, ctx.tz, ctx.now, ctx.params)
    if ctx.params.get("cursor"):
        trades = T.after_cursor(trades, ctx.params["cursor"])
    page = trades[:limit]
    meta: dict[str, Any] = {"has_more": len(trades) > limit}
    if meta["has_more"]:
        meta["next_cursor"] = T.encode_cursor(page[-1])
    return Result(data={"trades": [T.row(ctx.store, ctx.uid, t) for t in page]}, meta=meta)


def _check_trade_refs(ctx: Ctx, body: dict[str, Any], account_id: int | None) -> None:
    if body.get("strategy_id") is not None:
        strategy = ctx.store.get("strategy", body["strategy_id"], ctx.uid)
        if strategy is None:
            raise Invalid({"strategy_id": "is not one of your strategies"})
        if strategy.get("account_id") and account_id and strategy["account_id"] != account_id:
            raise Invalid({"strategy_id": "is bound to another account"})
        if body.get("setup_id") is not None and body["setup_id"] not in {
            s["setup_id"] for s in strategy["setups"]
        }:
            raise Invalid({"setup_id": "does not belong to strategy_id"})
    elif body.get("setup_id") is not None:
        raise Invalid({"setup_id": "needs strategy_id"})
    if body.get("emotional_state") is not None and body["emotional_state"] not in EMOTIONS:
        raise Invalid(
            {"emotional_state": "is not in your emotions catalog"}, allowed=list(EMOTIONS)
        )


def _check_asset_config(body: dict[str, Any]) -> None:
    config = body.get("asset_config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise Invalid({"asset_config": "must be an object"})
    errors: dict[str, str] = {}
    if body.get("asset_type") == "forex":
        if config.get("lot_type") not in (None, "standard", "mini", "micro"):
            errors["lot_type"] = "must be standard, mini or micro"
        if "pip_value" in config:
            try:
                num()(config["pip_value"])
            except ValueError as exc:
                errors["pip_value"] = str(exc)
    elif body.get("asset_type") == "options" and config.get("option_type") not in (
        None,
        "call",
        "put",
    ):
        errors["option_type"] = "must be call or put"
    if errors:
        raise Invalid({"asset_config": "has invalid fields"}, asset_config_errors=errors)


@route("POST", "/trades", "write:trades")
async def create_trade(ctx: Ctx) -> Result:
    body = check_body(
        ctx.body,
        TRADE_CREATE,
        required=("account_id", "trade_date", "symbol", "direction", "net_pnl"),
    )
    moment = body["trade_date"]
    tomorrow_end = (datetime.fromtimestamp(ctx.now, UTC) + timedelta(days=2)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if moment.year < 2000 or moment >= tomorrow_end:
        raise Invalid({"trade_date": "must be between 2000-01-01 and tomorrow"})
    body["trade_date"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    account = ctx.store.get("account", body["account_id"], ctx.uid)
    if account is None or account.get("is_archived"):
        raise Invalid({"account_id": "is not one of your active accounts"})
    _check_trade_refs(ctx, body, body["account_id"])
    _check_asset_config(body)
    if not ctx.pro:
        today = datetime.fromtimestamp(ctx.now, UTC).date().isoformat()
        made = sum(1 for t in ctx.store.all("trade", ctx.uid) if t["created_at"][:10] == today)
        if made >= 100:
            raise ApiError(
                429,
                "limit_reached",
                "The free plan's daily trade cap is reached.",
                {"usage": {"day": made, "day_cap": 100}},
            )
    trade = T.store_trade(ctx.store, ctx.uid, body, ctx.now)
    return Result(201, {"trade": T.detail(ctx.store, ctx.uid, trade, ctx.scopes)})


@route("GET", "/trades/{n}", "read:trades")
async def get_trade(ctx: Ctx) -> Result:
    return Result(data={"trade": T.detail(ctx.store, ctx.uid, _trade(ctx), ctx.scopes)})


@route("PATCH", "/trades/{n}", "write:trades")
async def patch_trade(ctx: Ctx) -> Result:
    trade = _trade(ctx)
    body = check_body(ctx.body, _QUALITATIVE)
    if not body and not ctx.body:
        raise Invalid({"body": "has no fields to change"})
    for name in ("sl_price", "tp_price"):
        if name in body and body[name] is not None and body[name] <= 0:
            raise Invalid({name: "must be greater than 0"})
    merged = {"strategy_id": trade.get("strategy_id"), "setup_id": trade.get("setup_id"), **body}
    _check_trade_refs(ctx, merged, trade["account_id"])
    changes = {("grade" if k == "trade_quality_grade" else k): v for k, v in body.items()}
    updated = {**trade, **changes, "updated_at": _iso(ctx.now)}
    ctx.store.put("trade", trade["trade_id"], ctx.uid, updated)
    propagated = False
    shared = {k: v for k, v in changes.items() if k in {"strategy_id", "setup_id", "grade"}}
    if shared and (trade.get("is_copy") or trade.get("is_copy_source")):
        source_id = trade.get("source_trade_id") or trade["trade_id"]
        for other in ctx.store.all("trade", ctx.uid):
            if other["trade_id"] != trade["trade_id"] and (
                other["trade_id"] == source_id or other.get("source_trade_id") == source_id
            ):
                ctx.store.put("trade", other["trade_id"], ctx.uid, {**other, **shared})
                propagated = True
    return Result(
        data={"trade": T.detail(ctx.store, ctx.uid, updated, ctx.scopes), "propagated": propagated}
    )


@route("DELETE", "/trades/{n}", "write:trades")
async def archive_trade(ctx: Ctx) -> Result:
    trade = _trade(ctx)
    cascade = ctx.params.get("including_copies", "").lower() in {"1", "true"}
    if cascade and trade.get("is_copy"):
        raise Invalid({"including_copies": "only applies to a copy source"})
    archived = [trade]
    if cascade:
        archived += [
            t
            for t in ctx.store.all("trade", ctx.uid)
            if t.get("source_trade_id") == trade["trade_id"] and not t.get("archived")
        ]
    for t in archived:
        ctx.store.put("trade", t["trade_id"], ctx.uid, {**t, "archived": True})
    return Result(
        204,
        headers={
            "X-Trades-Archived": str(len(archived)),
            "X-Copies-Archived": str(len(archived) - 1),
        },
    )


@route("GET", "/trades/{n}/executions", "read:trades")
async def list_executions(ctx: Ctx) -> Result:
    trade = _trade(ctx)
    return Result(data={"executions": T.detail(ctx.store, ctx.uid, trade, set())["executions"]})


_FILL = {
    "price": num(lo=0.00000001, hi=9_999_999_999.99),
    "quantity": num(lo=0.00000001, hi=9_999_999_999.99),
    "execution_time": dt(nullable=True),
    "sort_order": integer(nullable=True),
}


@route("PUT", "/trades/{n}/executions", "write:trades")
async def put_executions(ctx: Ctx) -> Result:
    trade = _trade(ctx)
    body = check_body(ctx.body, {"entries": lambda v: v, "exits": lambda v: v})
    if "entries" not in body and "exits" not in body:
        raise Invalid({"entries": "send entries and/or exits ([] clears)"})
    fills: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for group, kind in (("entries", "entry"), ("exits", "exit")):
        items = body.get(group) or []
        if not isinstance(items, list):
            problems[group] = "must be an array"
            continue
        for i, item in enumerate(items):
            try:
                fill = check_body(item, _FILL, required=("price", "quantity"))
            except Invalid as exc:
                for k, v in exc.details.get("fields", {}).items():
                    problems[f"{group}[{i}].{k}"] = v
                continue
            moment = fill.get("execution_time")
            if moment is not None:
                if moment.year < 2000 or moment.timestamp() > ctx.now + 86400:
                    problems[f"{group}[{i}].execution_time"] = "must be 2000-01-01 to now + 24h"
                    continue
                fill["execution_time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            fills.append(
                {
                    "type": kind,
                    "price": fill["price"],
                    "quantity": fill["quantity"],
                    "execution_time": fill.get("execution_time"),
                    "sort_order": fill.get("sort_order")
                    if fill.get("sort_order") is not None
                    else i,
                }
            )
    if len(fills) > 200:
        problems["entries"] = "at most 200 executions per trade"
    if problems:
        raise Invalid(problems)
    rows = [{"execution_id": ctx.store.next_id("execution"), **f} for f in fills]
    updated = {**trade, "executions": rows, "updated_at": _iso(ctx.now)}
    ctx.store.put("trade", trade["trade_id"], ctx.uid, updated)
    return Result(data={"executions": T.detail(ctx.store, ctx.uid, updated, set())["executions"]})


@route("PUT", "/trades/{n}/confirmations", "write:trades")
async def put_confirmations(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, _trade(ctx))
    body = check_body(ctx.body, {"confirmations": lambda v: v}, required=("confirmations",))
    items = body["confirmations"]
    if not isinstance(items, list) or len(items) > 200:
        raise Invalid({"confirmations": "must be an array of at most 200 items"})
    known = {
        c["confirmation_id"]: c
        for s in ctx.store.all("strategy", ctx.uid)
        for su in s["setups"]
        for c in su["confirmations"]
    }
    rows, unknown = [], []
    for item in items:
        fields = check_body(
            item,
            {"confirmation_id": integer(1), "was_present": lambda v: v, "notes": string()},
            required=("confirmation_id",),
        )
        if fields["confirmation_id"] not in known:
            unknown.append(fields["confirmation_id"])
            continue
        rows.append(
            {
                "confirmation_id": fields["confirmation_id"],
                "name": known[fields["confirmation_id"]]["name"],
                "was_present": bool(fields.get("was_present", True)),
                "notes": fields.get("notes"),
            }
        )
    if unknown:
        raise Invalid({"confirmations": "contains unknown ids"}, unknown_confirmation_ids=unknown)
    ctx.store.put("trade", trade["trade_id"], ctx.uid, {**trade, "confirmations": rows})
    return Result(data={"confirmations": rows})


@route("PUT", "/trades/{n}/tags", "write:tags")
async def put_tags(ctx: Ctx) -> Result:
    trade = _trade(ctx)
    body = check_body(ctx.body, {"tag_ids": lambda v: v}, required=("tag_ids",))
    ids = body["tag_ids"]
    if not isinstance(ids, list) or len(ids) > 100:
        raise Invalid({"tag_ids": "must be an array of at most 100 ids"})
    try:
        ids = [integer(1)(i) for i in ids]
    except ValueError:
        raise Invalid({"tag_ids": "must contain tag ids"}) from None
    unknown = [i for i in ids if ctx.store.get("tag", i, ctx.uid) is None]
    if unknown:
        raise Invalid({"tag_ids": "contains unknown ids"}, unknown_tag_ids=unknown)
    ids = list(dict.fromkeys(ids))
    ctx.store.put(
        "trade", trade["trade_id"], ctx.uid, {**trade, "tag_ids": ids, "updated_at": _iso(ctx.now)}
    )
    tags = [ctx.store.get("tag", i) for i in ids]
    return Result(
        data={
            "tags": [
                {
                    "tag_id": t["tag_id"],
                    "name": t["name"],
                    "category_id": t["category_id"],
                    "color": t["color"],
                }
                for t in tags
                if t
            ]
        }
    )


# --- screenshots ----------------------------------------------------------------------------


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xC3:
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None, None


_TYPES = {
    "image/png": ("png", (".png",), b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": ("jpg", (".jpg", ".jpeg"), b"\xff\xd8\xff"),
    "application/pdf": ("pdf", (".pdf",), b"%PDF-"),
}


@route("GET", "/trades/{n}/screenshots", "read:screenshots")
async def list_screenshots(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, _trade(ctx))
    shots = T.screenshots_of(ctx.store, ctx.uid, trade)
    return Result(data={"screenshots": [T.screenshot_meta(s) for s in shots]})


@route("POST", "/trades/{n}/screenshots", "write:screenshots")
async def upload_screenshot(ctx: Ctx) -> Result:
    number = _int(ctx, "n")
    trade = T.source_of(ctx.store, _trade(ctx))
    if "file" not in ctx.files:
        raise Invalid({"file": "is required (multipart form field 'file')"})
    unknown = set(ctx.form) - {"label", "sort_order"}
    if unknown:
        raise Invalid({k: "is not a known field" for k in unknown})
    filename, data, mime = ctx.files["file"]
    if len(data) > 10 * 1024 * 1024:
        raise ApiError(413, "request_too_large", "Screenshots are limited to 10 MB.")
    kind = _TYPES.get(mime)
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind is None or ext not in kind[1] or not data.startswith(kind[2]):
        raise Invalid({"file": "must be a JPEG, PNG or PDF (extension and type are checked)"})
    label = _param(ctx, "label", string(0, 100))
    existing = T.screenshots_of(ctx.store, ctx.uid, trade)
    cap = 3 if ctx.pro else 1
    if len(existing) >= cap:
        raise ApiError(
            413,
            "limit_reached",
            "The per-trade screenshot cap is reached.",
            {"cap": "per_trade", "limit": cap, "current": len(existing), "plan": ctx.user["plan"]},
        )
    order = (
        _param(ctx, "sort_order", integer())
        if ctx.form.get("sort_order")
        else (max((s["sort_order"] for s in existing), default=-1) + 1)
    )
    width, height = _image_size(data)
    sid = ctx.store.next_id("screenshot")
    shot = {
        "screenshot_id": sid,
        "trade_id": trade["trade_id"],
        "trade_number": number,
        "file_size": len(data),
        "original_size": len(data),
        "file_type": kind[0],
        "width": width,
        "height": height,
        "label": label,
        "sort_order": order,
        "uploaded_at": _iso(ctx.now),
        "archived": False,
        "data_b64": base64.b64encode(data).decode(),
    }
    ctx.store.put("screenshot", sid, ctx.uid, shot)
    return Result(201, T.screenshot_meta(shot))


@route("GET", "/trades/{n}/screenshots/{sid}", "read:screenshots")
async def download_screenshot(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, _trade(ctx))
    shot = ctx.store.get("screenshot", _int(ctx, "sid"), ctx.uid)
    if shot is None or shot["trade_id"] != trade["trade_id"] or shot.get("archived"):
        raise ApiError(404, "not_found", "Screenshot not found.")
    media = {"png": "image/png", "jpg": "image/jpeg", "pdf": "application/pdf"}[shot["file_type"]]
    return Result(
        raw=T.screenshot_bytes(shot),
        media_type=media,
        headers={"Cache-Control": "private, max-age=300"},
    )


@route("DELETE", "/trades/{n}/screenshots/{sid}", "write:screenshots")
async def archive_screenshot(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, _trade(ctx))
    shot = ctx.store.get("screenshot", _int(ctx, "sid"), ctx.uid)
    if shot is None or shot["trade_id"] != trade["trade_id"] or shot.get("archived"):
        raise ApiError(404, "not_found", "Screenshot not found.")
    ctx.store.put("screenshot", shot["screenshot_id"], ctx.uid, {**shot, "archived": True})
    return Result(204)


# --- tags -----------------------------------------------------------------------------------


@route("GET", "/tags", "read:tags")
async def list_tags(ctx: Ctx) -> Result:
    rows = ctx.store.all("tag", ctx.uid)
    if ctx.params.get("category_id"):
        rows = [t for t in rows if str(t["category_id"]) == ctx.params["category_id"]]
    if ctx.params.get("type"):
        if ctx.params["type"] not in ("mistake", "custom"):
            raise Invalid({"type": "is not a tag type"}, allowed=["mistake", "custom"])
        rows = [t for t in rows if t["type"] == ctx.params["type"]]
    return Result(data={"tags": sorted(rows, key=lambda t: t["tag_id"])})


@route("GET", "/tag-categories", "read:tags")
async def list_categories(ctx: Ctx) -> Result:
    return Result(data={"categories": ctx.store.all("tag_category", ctx.uid)})


_ID_FIELD = {"tag_category": "category_id", "tag": "tag_id", "account": "account_id"}


def _unique(ctx: Ctx, kind: str, field: str, value: str, skip: int | None = None) -> None:
    """409 duplicate_name when another live document of this kind has the same name."""
    id_field = _ID_FIELD[kind]
    for doc in ctx.store.all(kind, ctx.uid):
        if doc.get("is_archived") or doc[id_field] == skip:
            continue
        if doc[field].casefold() == value.casefold():
            label = kind.replace("_", " ")
            raise ApiError(409, "duplicate_name", f"A {label} named {value!r} already exists.")


@route("POST", "/tag-categories", "write:tags")
async def create_category(ctx: Ctx) -> Result:
    body = check_body(ctx.body, {"name": string(1, 50, nullable=False)}, required=("name",))
    _unique(ctx, "tag_category", "name", body["name"])
    cid = ctx.store.next_id("tag_category")
    doc = {"category_id": cid, "name": body["name"]}
    ctx.store.put("tag_category", cid, ctx.uid, doc)
    return Result(201, {"category": doc})


@route("PATCH", "/tag-categories/{id}", "write:tags")
async def rename_category(ctx: Ctx) -> Result:
    doc = _owned(ctx, "tag_category", _int(ctx, "id"), "Tag category")
    body = check_body(ctx.body, {"name": string(1, 50, nullable=False)}, required=("name",))
    _unique(ctx, "tag_category", "name", body["name"], skip=doc["category_id"])
    doc = {**doc, "name": body["name"]}
    ctx.store.put("tag_category", doc["category_id"], ctx.uid, doc)
    return Result(data={"category": doc})


@route("DELETE", "/tag-categories/{id}", "write:tags")
async def delete_category(ctx: Ctx) -> Result:
    doc = _owned(ctx, "tag_category", _int(ctx, "id"), "Tag category")
    if any(t["category_id"] == doc["category_id"] for t in ctx.store.all("tag", ctx.uid)):
        raise ApiError(409, "category_has_tags", "Move or delete the category's tags first.")
    ctx.store.delete("tag_category", doc["category_id"])
    return Result(204)


_TAG = {"category_id": integer(1), "name": string(1, 100, nullable=False), "color": _color}


@route("POST", "/tags", "write:tags")
async def create_tag(ctx: Ctx) -> Result:
    body = check_body(ctx.body, _TAG, required=("category_id", "name"))
    _owned(ctx, "tag_category", body["category_id"], "Tag category")
    _unique(ctx, "tag", "name", body["name"])
    tid = ctx.store.next_id("tag")
    doc = {
        "tag_id": tid,
        "name": body["name"],
        "category_id": body["category_id"],
        "color": body.get("color", "#3b82f6"),
        "type": "custom",
    }
    ctx.store.put("tag", tid, ctx.uid, doc)
    return Result(201, {"tag": doc})


@route("PATCH", "/tags/{id}", "write:tags")
async def update_tag(ctx: Ctx) -> Result:
    doc = _owned(ctx, "tag", _int(ctx, "id"), "Tag")
    body = check_body(ctx.body, _TAG)
    if "name" in body:
        _unique(ctx, "tag", "name", body["name"], skip=doc["tag_id"])
    if "category_id" in body:
        _owned(ctx, "tag_category", body["category_id"], "Tag category")
    doc = {**doc, **body}
    ctx.store.put("tag", doc["tag_id"], ctx.uid, doc)
    return Result(data={"tag": doc})


@route("DELETE", "/tags/{id}", "write:tags")
async def delete_tag(ctx: Ctx) -> Result:
    doc = _owned(ctx, "tag", _int(ctx, "id"), "Tag")
    for trade in ctx.store.all("trade", ctx.uid):
        if doc["tag_id"] in trade.get("tag_ids", []):
            kept = [t for t in trade["tag_ids"] if t != doc["tag_id"]]
            ctx.store.put("trade", trade["trade_id"], ctx.uid, {**trade, "tag_ids": kept})
    ctx.store.delete("tag", doc["tag_id"])
    return Result(204)


# --- strategies -----------------------------------------------------------------------------


@route("GET", "/strategies", "read:strategies")
async def list_strategies(ctx: Ctx) -> Result:
    rows = [
        {k: v for k, v in s.items() if k != "setups"} | {"setup_count": len(s["setups"])}
        for s in ctx.store.all("strategy", ctx.uid)
    ]
    return Result(data={"strategies": rows})


@route("GET", "/strategies/{id}", "read:strategies")
async def get_strategy(ctx: Ctx) -> Result:
    return Result(data={"strategy": _owned(ctx, "strategy", _int(ctx, "id"), "Strategy")})


@route("GET", "/strategies/{id}/setups", "read:strategies")
async def get_setups(ctx: Ctx) -> Result:
    return Result(data={"setups": _owned(ctx, "strategy", _int(ctx, "id"), "Strategy")["setups"]})


# --- protocols ------------------------------------------------------------------------------


@route("GET", "/protocols", "read:protocols")
async def list_protocols(ctx: Ctx) -> Result:
    rows = ctx.store.all("protocol", ctx.uid)
    kinds = ("pre_market", "pre_trade", "in_trade", "post_trade", "end_of_day", "weekly")
    if ctx.params.get("type"):
        if ctx.params["type"] not in kinds:
            raise Invalid({"type": "is not a protocol type"}, allowed=list(kinds))
        rows = [p for p in rows if p["type"] == ctx.params["type"]]
    if ctx.params.get("active_only", "").lower() in {"1", "true"}:
        rows = [p for p in rows if p["is_active"]]
    return Result(
        data={
            "protocols": [
                {k: v for k, v in p.items() if k != "sections"}
                | {
                    "section_count": len(p["sections"]),
                    "item_count": sum(len(s["items"]) for s in p["sections"]),
                }
                for p in rows
            ]
        }
    )


@route("GET", "/protocols/{id}", "read:protocols")
async def get_protocol(ctx: Ctx) -> Result:
    return Result(data={"protocol": _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")})


def _item_values(
    proto: dict[str, Any], values: Any, completed: bool
) -> tuple[dict[str, Any], float]:
    if not isinstance(values, dict):
        raise Invalid({"item_values": "must be an object of item_id -> value"})
    items = {str(i["item_id"]): i for s in proto["sections"] for i in s["items"]}
    unknown = [k for k in values if k not in items]
    if unknown:
        raise Invalid(
            {"item_values": "contains unknown item ids"},
            unknown_item_ids=[int(k) if k.isdigit() else k for k in unknown],
        )
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        item = items[key]
        kind = item["item_type"]
        text = str(value) if not isinstance(value, bool) else ""
        if kind == "checkbox" and text not in {"1", "0"}:
            errors[key] = 'checkbox takes "1" or "0"'
        elif kind == "yes_no_na" and text not in {"yes", "no", "na"}:
            errors[key] = 'takes "yes", "no" or "na"'
        elif kind == "rating" and not (re.fullmatch(r"[1-5]", text)):
            errors[key] = "rating must be an integer 1-5"
        elif kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", text):
            errors[key] = "must be numeric"
        elif kind == "select" and text not in (item.get("options") or []):
            errors[key] = "must be one of the configured options"
        out[key] = int(text) if kind == "rating" and key not in errors else value
    if errors:
        raise Invalid({"item_values": "has invalid values"}, item_value_errors=errors)
    required = [int(k) for k, i in items.items() if i["is_required"]]
    missing = [k for k in required if str(k) not in out]
    if completed and missing:
        raise Invalid({"item_values": "misses required items"}, missing=missing)
    return out, round(100 * len(out) / len(items), 1) if items else 100.0


def _link_trade(ctx: Ctx, number: Any) -> dict[str, Any] | None:
    if number is None:
        return None
    for trade in ctx.store.all("trade", ctx.uid):
        if trade["trade_number"] == number and not trade.get("archived"):
            return T.source_of(ctx.store, trade)
    raise Invalid({"trade_number": "is not one of your trades"})


def _response_out(ctx: Ctx, resp: dict[str, Any], *, values: bool) -> dict[str, Any]:
    trade = ctx.store.get("trade", resp["trade_id"]) if resp.get("trade_id") else None
    out = {k: v for k, v in resp.items() if k not in {"values", "trade_id"}}
    out["trade_number"] = trade["trade_number"] if trade else None
    if values:
        proto = ctx.store.get("protocol", resp["protocol_id"]) or {"sections": []}
        items = {
            str(i["item_id"]): (s["section_id"], i) for s in proto["sections"] for i in s["items"]
        }
        out["answers"] = [
            {
                "item_id": int(k),
                "item_type": items[k][1]["item_type"],
                "section_id": items[k][0],
                "value": v,
            }
            for k, v in resp["values"].items()
            if k in items
        ]
    return out


@route("POST", "/protocols/{id}/responses", "write:protocols")
async def record_response(ctx: Ctx) -> Result:
    proto = _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")
    body = check_body(
        ctx.body,
        {
            "item_values": lambda v: v,
            "trade_number": integer(1, nullable=True),
            "status": enum(("completed", "draft")),
        },
        required=("item_values",),
    )
    status = body.get("status") or "completed"
    values, pct = _item_values(proto, body["item_values"], status == "completed")
    trade = _link_trade(ctx, body.get("trade_number"))
    rid = ctx.store.next_id("response")
    resp = {
        "response_id": rid,
        "protocol_id": proto["protocol_id"],
        "trade_id": trade["trade_id"] if trade else None,
        "status": status,
        "completion_pct": pct,
        "completed_at": _iso(ctx.now) if status == "completed" else None,
        "created_at": _iso(ctx.now),
        "values": values,
    }
    ctx.store.put("response", rid, ctx.uid, resp)
    return Result(201, {"response": _response_out(ctx, resp, values=True)})


@route("GET", "/protocols/{id}/responses", "read:protocols")
async def list_responses(ctx: Ctx) -> Result:
    proto = _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")
    rows = [
        r for r in ctx.store.all("response", ctx.uid) if r["protocol_id"] == proto["protocol_id"]
    ]
    status = ctx.params.get("status", "completed")
    if status not in ("completed", "draft", "all"):
        raise Invalid({"status": "is not allowed"}, allowed=["completed", "draft", "all"])
    if status != "all":
        rows = [r for r in rows if r["status"] == status]
    if ctx.params.get("trade_number"):
        number = _param(ctx, "trade_number", integer(1))
        trades = [t for t in ctx.store.all("trade", ctx.uid) if t["trade_number"] == number]
        ids = {t["trade_id"] for t in trades} | {t.get("source_trade_id") for t in trades}
        rows = [r for r in rows if r.get("trade_id") in ids]
    page, meta = _page(ctx, rows, cap=200)
    return Result(data={"responses": [_response_out(ctx, r, values=False) for r in page], **meta})


@route("GET", "/protocols/{id}/responses/{rid}", "read:protocols")
async def get_response(ctx: Ctx) -> Result:
    proto = _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")
    resp = _owned(ctx, "response", _int(ctx, "rid"), "Response")
    if resp["protocol_id"] != proto["protocol_id"]:
        raise ApiError(404, "not_found", "Response not found.")
    return Result(data={"response": _response_out(ctx, resp, values=True)})


@route("PATCH", "/protocols/{id}/responses/{rid}", "write:protocols")
async def patch_response(ctx: Ctx) -> Result:
    proto = _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")
    resp = _owned(ctx, "response", _int(ctx, "rid"), "Response")
    body = check_body(
        ctx.body,
        {
            "item_values": lambda v: v,
            "status": enum(("completed", "draft")),
            "trade_number": integer(1, nullable=True),
        },
    )
    status = body.get("status", resp["status"])
    values, pct = _item_values(
        proto, body.get("item_values", resp["values"]), status == "completed"
    )
    updated = {**resp, "status": status, "values": values, "completion_pct": pct}
    if status == "completed" and not resp.get("completed_at"):
        updated["completed_at"] = _iso(ctx.now)
    if "trade_number" in body:
        trade = _link_trade(ctx, body["trade_number"])
        updated["trade_id"] = trade["trade_id"] if trade else None
    ctx.store.put("response", resp["response_id"], ctx.uid, updated)
    return Result(data={"response": _response_out(ctx, updated, values=True)})


@route("DELETE", "/protocols/{id}/responses/{rid}", "write:protocols")
async def delete_response(ctx: Ctx) -> Result:
    _owned(ctx, "protocol", _int(ctx, "id"), "Protocol")
    resp = _owned(ctx, "response", _int(ctx, "rid"), "Response")
    ctx.store.delete("response", resp["response_id"])
    return Result(204)


# --- accounts -------------------------------------------------------------------------------


def _account_out(doc: dict[str, Any], balance: bool) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "balance"}
    if balance and doc.get("balance"):
        out["balance"] = doc["balance"]
    return out


@route("GET", "/accounts", "read:accounts")
async def list_accounts(ctx: Ctx) -> Result:
    rows = ctx.store.all("account", ctx.uid)
    if ctx.params.get("include_archived", "").lower() not in {"1", "true"}:
        rows = [a for a in rows if not a.get("is_archived")]
    if ctx.params.get("broker_key"):
        rows = [a for a in rows if a.get("broker_key") == ctx.params["broker_key"]]
    if ctx.params.get("account_type"):
        rows = [a for a in rows if a["account_type"] == ctx.params["account_type"]]
    return Result(data={"accounts": [_account_out(a, False) for a in rows]})


@route("GET", "/accounts/{id}", "read:accounts")
async def get_account(ctx: Ctx) -> Result:
    doc = _owned(ctx, "account", _int(ctx, "id"), "Account")
    wants = "read:balance" in ctx.scopes and ctx.params.get("include") != "basic"
    return Result(data={"account": _account_out(doc, wants)})


@route("GET", "/accounts/{id}/balance", "read:balance")
async def get_balance(ctx: Ctx) -> Result:
    doc = _owned(ctx, "account", _int(ctx, "id"), "Account")
    if not doc.get("balance"):
        raise ApiError(404, "not_found", "This account has no balance profile.")
    return Result(data={"balance": doc["balance"]})


# --- auto-sync ------------------------------------------------------------------------------

SCHEDULE = 15 * 60
COOLDOWN = 20


def _catch_up(ctx: Ctx, conn: dict[str, Any]) -> dict[str, Any]:
    """Scheduled syncs happen every 15 minutes; write the ones due since the last read."""
    due = conn["scheduled_until"]
    first = max(due + SCHEDULE, ctx.now - 24 * 3600)
    count = 0
    t = first
    while t <= ctx.now and count < 96:
        expired = conn["token_status"] == "expired"  # noqa: S105 - a status, not a secret
        lid = ctx.store.next_id("synclog")
        ctx.store.put(
            "synclog",
            lid,
            ctx.uid,
            {
                "log_id": lid,
                "connection_id": conn["connection_id"],
                "broker_key": conn["broker_key"],
                "trigger": "schedule",
                "status": "failed" if expired else "success",
                "started_at": _iso(t),
                "finished_at": _iso(t + 4),
                "imported": 0,
                "skipped": 0 if expired else 3,
                "total_fetched": 0 if expired else 3,
                "errors": ["broker token expired; reconnect in settings"] if expired else [],
                "message": "Token expired" if expired else "No new trades",
            },
        )
        if not expired:
            conn = {**conn, "last_sync_at": _iso(t + 4)}
        due = t
        t += SCHEDULE
        count += 1
    if due != conn["scheduled_until"]:
        conn = {**conn, "scheduled_until": due}
        ctx.store.put("connection", conn["connection_id"], ctx.uid, conn)
    return conn


def _connection_out(ctx: Ctx, conn: dict[str, Any]) -> dict[str, Any]:
    account = ctx.store.get("account", conn["account_id"]) or {}
    return {
        "connection_id": conn["connection_id"],
        "broker_key": conn["broker_key"],
        "broker_name": conn["broker_name"],
        "account_id": conn["account_id"],
        "account_name": account.get("account_name"),
        "is_active": conn["is_active"],
        "status": conn["status"],
        "token_status": conn["token_status"],
        "last_sync_at": conn["last_sync_at"],
        "next_sync_at": _iso(conn["scheduled_until"] + SCHEDULE),
    }


@route("GET", "/autosync/connections", "read:autosync")
async def list_connections(ctx: Ctx) -> Result:
    rows = [_catch_up(ctx, c) for c in ctx.store.all("connection", ctx.uid)]
    return Result(data={"connections": [_connection_out(ctx, c) for c in rows]})


@route("GET", "/autosync/connections/{id}", "read:autosync")
async def get_connection(ctx: Ctx) -> Result:
    conn = _catch_up(ctx, _owned(ctx, "connection", _int(ctx, "id"), "Connection"))
    return Result(data={"connection": _connection_out(ctx, conn)})


@route("GET", "/autosync/log", "read:autosync")
async def sync_log(ctx: Ctx) -> Result:
    for conn in ctx.store.all("connection", ctx.uid):
        _catch_up(ctx, conn)
    rows = sorted(ctx.store.all("synclog", ctx.uid), key=lambda r: -r["log_id"])
    if ctx.params.get("connection_id"):
        rows = [r for r in rows if str(r["connection_id"]) == ctx.params["connection_id"]]
    page, meta = _page(ctx, rows, cap=200)
    return Result(data={"log": page, **meta})


@route("POST", "/autosync/connections/{id}/sync", "write:autosync")
async def trigger_sync(ctx: Ctx) -> Result:
    conn = _catch_up(ctx, _owned(ctx, "connection", _int(ctx, "id"), "Connection"))
    if ctx.body not in (None, {}):
        raise Invalid({"body": "this endpoint takes no body"})
    if not ctx.pro:
        raise ApiError(
            429,
            "limit_reached",
            "Manual sync needs the Pro plan.",
            {"plan": ctx.user["plan"], "required_plan": "pro"},
        )
    if not conn["is_active"]:
        raise Invalid({"connection": "is inactive"})
    last = conn.get("last_manual_at")
    if last is not None and ctx.now - last < COOLDOWN:
        wait = max(1, int(COOLDOWN - (ctx.now - last) + 0.999))
        raise ApiError(
            429,
            "connection_sync_cooldown",
            f"This connection synced moments ago; try again in {wait} s.",
            {"retry_after_seconds": wait},
            {"Retry-After": str(wait), "X-RateLimit-Scope": "connection-sync"},
        )
    if conn["token_status"] == "expired":  # noqa: S105 - a status, not a secret
        raise ApiError(
            401,
            "token_expired",
            "The broker token expired and could not be refreshed; reconnect it in "
            "Settings -> Auto-Sync.",
        )
    rng = random.Random(conn["connection_id"] * 1009 + conn["imports"])
    new = rng.choice([0, 1, 1, 2])
    imported = []
    for i in range(new):
        body = {
            "account_id": conn["account_id"],
            "trade_date": _iso(ctx.now - 600 * (i + 1)),
            "symbol": rng.choice(["MNQ", "MES"]),
            "direction": rng.choice(["long", "short"]),
            "quantity": 1,
            "multiplier": 2,
            "net_pnl": round(rng.uniform(-80, 120), 2),
            "fees": 1.24,
        }
        imported.append(
            T.store_trade(
                ctx.store,
                ctx.uid,
                body,
                ctx.now,
                executions=[
                    {
                        "type": "entry",
                        "price": 21000.25,
                        "quantity": 1,
                        "execution_time": body["trade_date"],
                    },
                    {
                        "type": "exit",
                        "price": 21010.5,
                        "quantity": 1,
                        "execution_time": body["trade_date"],
                    },
                ],
            )
        )
    skipped = rng.randint(0, 3)
    lid = ctx.store.next_id("synclog")
    ctx.store.put(
        "synclog",
        lid,
        ctx.uid,
        {
            "log_id": lid,
            "connection_id": conn["connection_id"],
            "broker_key": conn["broker_key"],
            "trigger": "manual",
            "status": "success",
            "started_at": _iso(ctx.now),
            "finished_at": _iso(ctx.now + 2),
            "imported": new,
            "skipped": skipped,
            "total_fetched": new + skipped,
            "errors": [],
            "message": f"Imported {new} new trade(s)",
        },
    )
    ctx.store.put(
        "connection",
        conn["connection_id"],
        ctx.uid,
        {
            **conn,
            "last_manual_at": ctx.now,
            "last_sync_at": _iso(ctx.now),
            "imports": conn["imports"] + 1,
        },
    )
    return Result(
        data={
            "connection_id": conn["connection_id"],
            "log_id": lid,
            "imported": new,
            "skipped": skipped,
            "total_fetched": new + skipped,
            "total_trades": len(T.user_trades(ctx.store, ctx.uid)),
            "total_pnl": round(sum(t["net_pnl"] for t in imported), 2),
            "errors": [],
            "message": f"Imported {new} new trade(s), skipped {skipped} already journaled.",
        }
    )


# --- stats and calendar ---------------------------------------------------------------------


for _kind in ("summary", "by-symbol", "by-strategy"):

    def _make(kind: str) -> Any:
        async def handler(ctx: Ctx) -> Result:
            return Result(data=T.stats(ctx.store, ctx.uid, ctx.tz, ctx.now, kind, ctx.params))

        return handler

    route("GET", f"/stats/{_kind}", "read:trades")(_make(_kind))


@route("GET", "/calendar", "read:trades")
async def calendar(ctx: Ctx) -> Result:
    return Result(data=T.calendar(ctx.store, ctx.uid, ctx.tz, ctx.now, ctx.params))


ROUTES = _routes
