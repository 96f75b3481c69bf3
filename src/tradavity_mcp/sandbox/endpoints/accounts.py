"""Trading accounts, their balance profile, balance events and payouts.

Shapes as built here: an account row carries `account_id, account_name, account_type,
currency, broker_key, breakeven_offset_low, breakeven_offset_high, is_archived,
trade_template_id, created_at` (plus `balance` when the key has `read:balance`); a balance
event `event_id, account_id, event_type, note, balance_at_event, pnl_at_event, rule_type,
rule_limit, rule_actual, created_at`; a payout `payout_id, account_id, status, gross_amount,
profit_split_pct, firm_cut, net_amount, balance_before, balance_after,
total_profit_at_request, note, requested_at`.
"""

from __future__ import annotations

from typing import Any

from .._catalog import BROKERS
from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, boolean, check_body, enum, integer, num, string
from .common import flag, iso, listed, owned, page, param, path_int, save, unique, within_cap

__all__ = [
    "archive_account",
    "create_account",
    "get_account",
    "get_balance",
    "list_accounts",
    "list_balance_events",
    "list_payouts",
    "record_balance_event",
    "request_payout",
    "update_account",
]

ACCOUNT_TYPES = ("live", "demo", "paper", "funded", "live_funded", "trading_combine")
EVENT_TYPES = (
    "status_change",
    "rule_violation",
    "manual_update",
    "payout",
    "reset",
    "target_adjustment",
)
ACCOUNT_CAP = {"free": 3, "pro": 25}
_OPEN_PAYOUTS = {"pending", "approved", "processing"}


def _currency(value: Any) -> Any:
    if not isinstance(value, str) or not value.isalpha() or len(value) != 3:
        raise ValueError("must be a three-letter ISO 4217 code")
    return value.upper()


def _broker(value: Any) -> Any:
    if value is None:
        return None
    if value not in {b["broker_key"] for b in BROKERS}:
        raise ValueError("is not a broker in the /brokers catalog")
    return value


_FIELDS = {
    "account_name": string(1, 100, nullable=False),
    "account_type": enum(ACCOUNT_TYPES, nullable=False),
    "currency": _currency,
    "broker_key": _broker,
    "breakeven_offset_low": num(hi=0),
    "breakeven_offset_high": num(lo=0),
}


def account_out(doc: dict[str, Any], balance: bool) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "balance"}
    if balance and doc.get("balance"):
        out["balance"] = doc["balance"]
    return out


async def list_accounts(ctx: Ctx) -> Result:
    rows = sorted(ctx.store.all("account", ctx.uid), key=lambda a: a["account_id"])
    if not flag(ctx, "include_archived"):
        rows = [a for a in rows if not a.get("is_archived")]
    if ctx.params.get("broker_key"):
        rows = [a for a in rows if a.get("broker_key") == ctx.params["broker_key"]]
    if ctx.params.get("account_type"):
        if ctx.params["account_type"] not in ACCOUNT_TYPES:
            raise Invalid({"account_type": "is not an account type"}, allowed=list(ACCOUNT_TYPES))
        rows = [a for a in rows if a["account_type"] == ctx.params["account_type"]]
    wants = "read:balance" in ctx.scopes
    chunk, meta = page(ctx, rows)
    return Result(data={"accounts": [account_out(a, wants) for a in chunk], **meta})


async def get_account(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    wants = "read:balance" in ctx.scopes and ctx.params.get("include") != "basic"
    return Result(data={"account": account_out(doc, wants)})


async def create_account(ctx: Ctx) -> Result:
    body = check_body(ctx.body, _FIELDS, required=("account_name",))
    unique(ctx, "account", "account_name", body["account_name"])
    active = [a for a in ctx.store.all("account", ctx.uid) if not a.get("is_archived")]
    within_cap(ctx, ACCOUNT_CAP, len(active), "active accounts")
    aid = ctx.store.next_id("account")
    doc = {
        "account_id": aid,
        "account_name": body["account_name"],
        "account_type": body.get("account_type", "live"),
        "currency": body.get("currency", "USD"),
        "broker_key": body.get("broker_key"),
        "breakeven_offset_low": body.get("breakeven_offset_low") or 0.0,
        "breakeven_offset_high": body.get("breakeven_offset_high") or 0.0,
        "is_archived": False,
        "balance": None,
        "trade_template_id": None,
        "created_at": iso(ctx.now),
    }
    ctx.store.put("account", aid, ctx.uid, doc)
    return Result(201, {"account": account_out(doc, "read:balance" in ctx.scopes)})


def _set_archived(ctx: Ctx, doc: dict[str, Any], archived: bool) -> dict[str, Any]:
    if archived:
        others = [
            a
            for a in ctx.store.all("account", ctx.uid)
            if not a.get("is_archived") and a["account_id"] != doc["account_id"]
        ]
        if not others:
            raise ApiError(409, "conflict", "You cannot archive your only active account.")
        for conn in ctx.store.all("connection", ctx.uid):
            if conn["account_id"] == doc["account_id"] and conn["is_active"]:
                ctx.store.put(
                    "connection",
                    conn["connection_id"],
                    ctx.uid,
                    {**conn, "is_active": False, "status": "disconnected", "token_status": "none"},
                )
    else:
        unique(ctx, "account", "account_name", doc["account_name"], skip=doc["account_id"])
    return save(ctx, "account", {**doc, "is_archived": archived})


async def update_account(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    spec = {
        **_FIELDS,
        "trade_template_id": integer(1, nullable=True),
        "is_archived": boolean(),
    }
    body = check_body(ctx.body, spec)
    if not body:
        raise Invalid({"body": "has no fields to change"})
    if "is_archived" in body:
        if len(body) > 1:
            raise Invalid({"is_archived": "cannot be combined with other field updates"})
        if body["is_archived"] == bool(doc.get("is_archived")):
            updated = doc
        else:
            updated = _set_archived(ctx, doc, body["is_archived"])
        return Result(data={"account": account_out(updated, "read:balance" in ctx.scopes)})
    if "account_name" in body:
        unique(ctx, "account", "account_name", body["account_name"], skip=doc["account_id"])
    for name in ("breakeven_offset_low", "breakeven_offset_high"):
        if name in body and body[name] is None:
            body[name] = 0.0
    updated = save(ctx, "account", {**doc, **body})
    return Result(data={"account": account_out(updated, "read:balance" in ctx.scopes)})


async def archive_account(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    if doc.get("is_archived"):
        raise ApiError(404, "not_found", "Account is already archived.")
    _set_archived(ctx, doc, True)
    return Result(204)


# --- balance ------------------------------------------------------------------------------


def _balanced(ctx: Ctx) -> dict[str, Any]:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    if not doc.get("balance"):
        raise ApiError(404, "not_found", "This account has no balance profile.")
    return doc


def _of_account(ctx: Ctx, kind: str) -> list[dict[str, Any]]:
    """The caller's documents of `kind` (balance events, payouts) on the path's account."""
    account_id = owned(ctx, "account", path_int(ctx, "id"), "Account")["account_id"]
    return [r for r in ctx.store.all(kind, ctx.uid) if r["account_id"] == account_id]


async def get_balance(ctx: Ctx) -> Result:
    return Result(data={"balance": _balanced(ctx)["balance"]})


async def list_balance_events(ctx: Ctx) -> Result:
    rows = _of_account(ctx, "balance_event")
    kind = ctx.params.get("event_type")
    if kind:
        if kind not in EVENT_TYPES:
            raise Invalid({"event_type": "is not an event type"}, allowed=list(EVENT_TYPES))
        rows = [e for e in rows if e["event_type"] == kind]
    rows.sort(key=lambda e: (e["created_at"], e["event_id"]), reverse=True)
    return listed(ctx, "events", rows, cap=200)


async def record_balance_event(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    body = check_body(
        ctx.body,
        {
            "note": string(1, 1000, nullable=False),
            "balance_at_event": num(nullable=True),
            "pnl_at_event": num(nullable=True),
            "rule_type": string(0, 50),
            "rule_limit": num(nullable=True),
            "rule_actual": num(nullable=True),
        },
        required=("note",),
    )
    if not doc.get("balance"):
        raise Invalid(
            {"account_id": "has no balance profile"},
            "Initialize the account's balance in the settings UI before recording events.",
        )
    eid = ctx.store.next_id("balance_event")
    event = {
        "event_id": eid,
        "account_id": doc["account_id"],
        "event_type": "manual_update",
        "note": body["note"],
        "balance_at_event": body.get("balance_at_event"),
        "pnl_at_event": body.get("pnl_at_event"),
        "rule_type": body.get("rule_type"),
        "rule_limit": body.get("rule_limit"),
        "rule_actual": body.get("rule_actual"),
        "created_at": iso(ctx.now),
    }
    ctx.store.put("balance_event", eid, ctx.uid, event)
    return Result(201, {"event": event})


async def list_payouts(ctx: Ctx) -> Result:
    rows = _of_account(ctx, "payout")
    status = param(ctx, "status", enum(("pending", "approved", "processing", "paid", "rejected")))
    if status:
        rows = [p for p in rows if p["status"] == status]
    rows.sort(key=lambda p: p["payout_id"], reverse=True)
    return listed(ctx, "payouts", rows, cap=200)


async def request_payout(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    body = check_body(
        ctx.body,
        {"gross_amount": num(gt=0), "note": string(0, 500)},
        required=("gross_amount",),
    )
    if not doc.get("balance"):
        raise Invalid({"account_id": "has no balance profile"})
    balance = doc["balance"]
    current = float(balance["current_balance"])
    open_sum = sum(
        p["gross_amount"]
        for p in ctx.store.all("payout", ctx.uid)
        if p["account_id"] == doc["account_id"] and p["status"] in _OPEN_PAYOUTS
    )
    effective = round(current - open_sum, 2)
    gross = round(float(body["gross_amount"]), 2)
    if gross > effective:
        raise Invalid(
            {"gross_amount": f"exceeds the available balance ({effective:.2f})"},
            available_balance=effective,
        )
    split = float(balance.get("profit_split_pct") or 100)
    net = round(gross * split / 100, 2)
    pid = ctx.store.next_id("payout")
    payout = {
        "payout_id": pid,
        "account_id": doc["account_id"],
        "status": "pending",
        "gross_amount": gross,
        "profit_split_pct": split,
        "firm_cut": round(gross - net, 2),
        "net_amount": net,
        "balance_before": current,
        "balance_after": round(current - gross, 2),
        "total_profit_at_request": round(current - float(balance["starting_balance"]), 2),
        "note": body.get("note"),
        "requested_at": iso(ctx.now),
    }
    ctx.store.put("payout", pid, ctx.uid, payout)
    return Result(201, {"payout": payout})
