"""Trades: list, read, create, patch, archive; executions, confirmations and tags on a trade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .. import _trades as T
from .._catalog import EMOTIONS
from .._pipeline import Ctx, Result
from .._validate import (
    ApiError,
    Invalid,
    boolean,
    check_body,
    day,
    dt,
    enum,
    integer,
    num,
    string,
    text_bytes,
)
from .common import iso, param, trade_of

__all__ = [
    "archive_trade",
    "create_trade",
    "get_trade",
    "list_executions",
    "list_trades",
    "patch_trade",
    "put_confirmations",
    "put_executions",
    "put_tags",
]

GRADES = ("A+", "A", "B", "C", "F")
NOTE_BYTES = 65_535  # a confirmation's notes, counted in UTF-8 bytes
#: The free plan's soft trade caps (creations per UTC day and per UTC month).
FREE_DAY_CAP, FREE_MONTH_CAP = 100, 500
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


async def list_trades(ctx: Ctx) -> Result:
    limit = param(ctx, "limit", integer(1, 200), 50)
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
        if strategy.get("copy_group_id") and account_id:
            group = ctx.store.get("copy_group", strategy["copy_group_id"], ctx.uid) or {}
            if account_id not in {m["account_id"] for m in group.get("members", [])}:
                raise Invalid({"strategy_id": "is bound to a copy group this account is not in"})
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
    elif body.get("asset_type") == "options":
        if config.get("option_type") not in (None, "call", "put"):
            errors["option_type"] = "must be call or put"
        if "strike_price" in config:
            try:
                num(gt=0, hi=9_999_999_999.99)(config["strike_price"])
            except ValueError as exc:
                errors["strike_price"] = str(exc)
        if "expiration" in config:
            try:
                day()(config["expiration"])
            except ValueError as exc:
                errors["expiration"] = str(exc)
    if errors:
        raise Invalid({"asset_config": "has invalid fields"}, asset_config_errors=errors)


def _free_caps(ctx: Ctx) -> None:
    """429 limit_reached once the free plan's daily or monthly trade cap is used up."""
    today = datetime.fromtimestamp(ctx.now, UTC).date().isoformat()
    made = [t["created_at"] for t in ctx.store.all("trade", ctx.uid)]
    usage = {
        "day": sum(1 for c in made if c[:10] == today),
        "day_cap": FREE_DAY_CAP,
        "month": sum(1 for c in made if c[:7] == today[:7]),
        "month_cap": FREE_MONTH_CAP,
    }
    if usage["day"] >= FREE_DAY_CAP:
        raise ApiError(
            429, "limit_reached", "The free plan's daily trade cap is reached.", {"usage": usage}
        )
    if usage["month"] >= FREE_MONTH_CAP:
        raise ApiError(
            429, "limit_reached", "The free plan's monthly trade cap is reached.", {"usage": usage}
        )


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
        _free_caps(ctx)
    trade = T.store_trade(ctx.store, ctx.uid, body, ctx.now)
    return Result(201, {"trade": T.detail(ctx.store, ctx.uid, trade, ctx.scopes)})


async def get_trade(ctx: Ctx) -> Result:
    return Result(data={"trade": T.detail(ctx.store, ctx.uid, trade_of(ctx), ctx.scopes)})


async def patch_trade(ctx: Ctx) -> Result:
    trade = trade_of(ctx)
    body = check_body(ctx.body, _QUALITATIVE)
    if not body and not ctx.body:
        raise Invalid({"body": "has no fields to change"})
    for name in ("sl_price", "tp_price"):
        if name in body and body[name] is not None and body[name] <= 0:
            raise Invalid({name: "must be greater than 0"})
    merged = {"strategy_id": trade.get("strategy_id"), "setup_id": trade.get("setup_id"), **body}
    _check_trade_refs(ctx, merged, trade["account_id"])
    changes = {("grade" if k == "trade_quality_grade" else k): v for k, v in body.items()}
    updated = {**trade, **changes, "updated_at": iso(ctx.now)}
    ctx.store.put("trade", trade["trade_id"], ctx.uid, updated)
    propagated = False
    shared = {k: v for k, v in changes.items() if k in {"strategy_id", "setup_id", "grade"}}
    if shared and (trade.get("is_copy") or trade.get("is_copy_source")):
        source_id = trade.get("source_trade_id") or trade["trade_id"]
        for other in ctx.store.all("trade", ctx.uid):
            if other["trade_id"] != trade["trade_id"] and (
                other["trade_id"] == source_id or other.get("source_trade_id") == source_id
            ):
                copy = {**other, **shared}
                strategy = (
                    ctx.store.get("strategy", copy["strategy_id"], ctx.uid)
                    if copy.get("strategy_id")
                    else None
                )
                if strategy and strategy.get("account_id") not in (None, copy["account_id"]):
                    # An account-scoped strategy does not fit this copy: unlink, not error.
                    copy["strategy_id"] = copy["setup_id"] = None
                ctx.store.put("trade", other["trade_id"], ctx.uid, copy)
                propagated = True
    return Result(
        data={"trade": T.detail(ctx.store, ctx.uid, updated, ctx.scopes), "propagated": propagated}
    )


async def archive_trade(ctx: Ctx) -> Result:
    trade = trade_of(ctx, archived_ok=True)
    if trade.get("archived"):
        raise ApiError(404, "not_found", "Trade is already archived.")
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


async def list_executions(ctx: Ctx) -> Result:
    trade = trade_of(ctx)
    return Result(data={"executions": T.detail(ctx.store, ctx.uid, trade, set())["executions"]})


_FILL = {
    "price": num(lo=0.00000001, hi=9_999_999_999.99),
    "quantity": num(lo=0.00000001, hi=9_999_999_999.99),
    "execution_time": dt(nullable=True),
    "sort_order": integer(nullable=True),
}


async def put_executions(ctx: Ctx) -> Result:
    trade = trade_of(ctx)
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
    updated = {**trade, "executions": rows, "updated_at": iso(ctx.now)}
    ctx.store.put("trade", trade["trade_id"], ctx.uid, updated)
    return Result(data={"executions": T.detail(ctx.store, ctx.uid, updated, set())["executions"]})


async def put_confirmations(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, trade_of(ctx))
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
            {
                "confirmation_id": integer(1),
                "was_present": boolean(nullable=True),
                "notes": text_bytes(NOTE_BYTES),
            },
            required=("confirmation_id",),
        )
        if fields["confirmation_id"] not in known:
            unknown.append(fields["confirmation_id"])
            continue
        rows.append(
            {
                "confirmation_id": fields["confirmation_id"],
                "name": known[fields["confirmation_id"]]["name"],
                "was_present": fields.get("was_present") is not False,
                "notes": fields.get("notes"),
            }
        )
    if unknown:
        raise Invalid({"confirmations": "contains unknown ids"}, unknown_confirmation_ids=unknown)
    ctx.store.put("trade", trade["trade_id"], ctx.uid, {**trade, "confirmations": rows})
    return Result(data={"confirmations": rows})


async def put_tags(ctx: Ctx) -> Result:
    trade = trade_of(ctx)
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
        "trade", trade["trade_id"], ctx.uid, {**trade, "tag_ids": ids, "updated_at": iso(ctx.now)}
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
