"""Trading accounts and their balance profile."""

from __future__ import annotations

from typing import Any

from ._http import owned, path_int, route
from ._pipeline import Ctx, Result
from ._validate import ApiError

__all__: list[str] = []


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
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    wants = "read:balance" in ctx.scopes and ctx.params.get("include") != "basic"
    return Result(data={"account": _account_out(doc, wants)})


@route("GET", "/accounts/{id}/balance", "read:balance")
async def get_balance(ctx: Ctx) -> Result:
    doc = owned(ctx, "account", path_int(ctx, "id"), "Account")
    if not doc.get("balance"):
        raise ApiError(404, "not_found", "This account has no balance profile.")
    return Result(data={"balance": doc["balance"]})
