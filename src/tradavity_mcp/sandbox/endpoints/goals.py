"""Goals and their period-by-period progress snapshots.

A goal is `goal_id, goal_name, metric, target_value, direction, timeframe, custom_start,
custom_end, status, scope, account_id, copy_group_id, created_at`. Snapshots are computed
on read from the journal, one per period (in the user's timezone) since the goal was
created: `snapshot_id, goal_id, period_start, period_end, target, actual, achieved,
snapshot_data {trades, decisions, net_pnl}`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .. import _trades as T
from .._pipeline import Ctx, Result
from .._validate import Invalid, check_body, day, enum, integer, num, string
from .common import iso, listed, owned, param, path_int, save

__all__ = ["create_goal", "delete_goal", "get_goal", "goal_snapshots", "list_goals", "update_goal"]

METRICS = (
    "net_pnl",
    "gross_pnl",
    "max_drawdown",
    "balance_target",
    "win_rate",
    "profit_factor",
    "expectancy",
    "rr_realized_avg",
    "a_plus_rate",
    "max_trades_per_day",
    "protocol_completion_rate",
)
DIRECTIONS = ("at_least", "at_most")
TIMEFRAMES = ("daily", "weekly", "monthly", "quarterly", "custom")
STATUSES = ("active", "paused", "archived")


def _strict_enum(allowed: tuple[str, ...], name: str) -> Any:
    def check(value: Any) -> Any:
        if value not in allowed:
            raise Invalid({name: "is not allowed"}, allowed=list(allowed))
        return value

    return check


_FIELDS = {
    "goal_name": string(1, 100, nullable=False),
    "metric": _strict_enum(METRICS, "metric"),
    "target_value": num(),
    "direction": _strict_enum(DIRECTIONS, "direction"),
    "timeframe": _strict_enum(TIMEFRAMES, "timeframe"),
    "custom_start": day(),
    "custom_end": day(),
    "account_id": integer(1, nullable=True),
    "copy_group_id": integer(1, nullable=True),
}


def _natural(metric: str) -> str:
    return "at_most" if metric in {"max_drawdown", "max_trades_per_day"} else "at_least"


def _check(ctx: Ctx, goal: dict[str, Any], body: dict[str, Any]) -> None:
    """Rules shared by POST and PATCH, applied to the merged goal."""
    if goal["target_value"] == 0 and goal["metric"] != "max_drawdown":
        raise Invalid({"target_value": "must be non-zero (0 is only meaningful for max_drawdown)"})
    dates = [k for k in ("custom_start", "custom_end") if k in body]
    if dates and body.get("timeframe") != "custom":
        raise Invalid(
            dict.fromkeys(dates, "is only accepted together with timeframe=custom"),
        )
    if body.get("timeframe") == "custom":
        missing = [k for k in ("custom_start", "custom_end") if not body.get(k)]
        if missing:
            raise Invalid(dict.fromkeys(missing, "is required when timeframe=custom"))
        if body["custom_end"] < body["custom_start"]:
            raise Invalid({"custom_end": "must be on or after custom_start"})
    if body.get("account_id") is not None and body.get("copy_group_id") is not None:
        raise Invalid({"account_id": "cannot be combined with copy_group_id"})
    if body.get("account_id") is not None and not ctx.store.get(
        "account", body["account_id"], ctx.uid
    ):
        raise Invalid({"account_id": "is not one of your accounts"})
    if body.get("copy_group_id") is not None and not ctx.store.get(
        "copy_group", body["copy_group_id"], ctx.uid
    ):
        raise Invalid({"copy_group_id": "is not one of your copy groups"})


def _scope_of(goal: dict[str, Any]) -> str:
    if goal.get("account_id"):
        return f"account_{goal['account_id']}"
    if goal.get("copy_group_id"):
        return f"group_{goal['copy_group_id']}"
    return goal.get("scope") or "all"


async def list_goals(ctx: Ctx) -> Result:
    status = param(ctx, "status", enum((*STATUSES, "all"))) or "active"
    rows = sorted(ctx.store.all("goal", ctx.uid), key=lambda g: g["goal_id"])
    if status != "all":
        rows = [g for g in rows if g["status"] == status]
    account = param(ctx, "account_id", integer(1))
    if account is not None:
        rows = [g for g in rows if g.get("account_id") == account]
    return listed(ctx, "goals", rows)


async def get_goal(ctx: Ctx) -> Result:
    return Result(data={"goal": owned(ctx, "goal", path_int(ctx, "id"), "Goal")})


async def create_goal(ctx: Ctx) -> Result:
    body = check_body(ctx.body, _FIELDS, required=("goal_name", "metric", "target_value"))
    goal = {
        "goal_id": 0,
        "goal_name": body["goal_name"],
        "metric": body["metric"],
        "target_value": body["target_value"],
        "direction": body.get("direction") or _natural(body["metric"]),
        "timeframe": body.get("timeframe") or "monthly",
        "custom_start": body.get("custom_start"),
        "custom_end": body.get("custom_end"),
        "status": "active",
        "scope": "",
        "account_id": body.get("account_id"),
        "copy_group_id": body.get("copy_group_id"),
        "created_at": iso(ctx.now),
    }
    _check(ctx, goal, body)
    goal["goal_id"] = ctx.store.next_id("goal")
    goal["scope"] = _scope_of(goal)
    ctx.store.put("goal", goal["goal_id"], ctx.uid, goal)
    return Result(201, {"goal": goal})


async def update_goal(ctx: Ctx) -> Result:
    goal = owned(ctx, "goal", path_int(ctx, "id"), "Goal")
    spec = {k: v for k, v in _FIELDS.items() if k not in {"account_id", "copy_group_id"}} | {
        "status": _strict_enum(STATUSES, "status"),
        "scope": string(0, 40),
    }
    body = check_body(ctx.body, spec)
    if not body:
        raise Invalid({"body": "has no fields to change"})
    updated = {**goal, **{k: v for k, v in body.items() if k != "scope"}}
    if "timeframe" in body and body["timeframe"] != "custom":
        updated["custom_start"] = updated["custom_end"] = None
    if "scope" in body:
        scope = body["scope"]
        updated["account_id"] = updated["copy_group_id"] = None
        if scope.startswith("account_") and scope[8:].isdigit():
            updated["account_id"] = int(scope[8:])
        elif scope.startswith("group_") and scope[6:].isdigit():
            updated["copy_group_id"] = int(scope[6:])
        elif scope not in ("all", ""):
            raise Invalid({"scope": 'must be "account_<id>", "group_<id>", "all" or ""'})
        _check(ctx, updated, {**body, **{k: updated[k] for k in ("account_id", "copy_group_id")}})
        updated["scope"] = scope
    else:
        _check(ctx, updated, body)
    return Result(data={"goal": save(ctx, "goal", updated)})


async def delete_goal(ctx: Ctx) -> Result:
    goal = owned(ctx, "goal", path_int(ctx, "id"), "Goal")
    ctx.store.delete("goal", goal["goal_id"])
    return Result(204)


# --- snapshots -----------------------------------------------------------------------------


def _periods(goal: dict[str, Any], first: date, last: date) -> list[tuple[date, date]]:
    kind = goal["timeframe"]
    if kind == "custom":
        return [(date.fromisoformat(goal["custom_start"]), date.fromisoformat(goal["custom_end"]))]
    out: list[tuple[date, date]] = []
    if kind == "daily":
        start = first
    elif kind == "weekly":
        start = first - timedelta(days=first.weekday())
    elif kind == "monthly":
        start = first.replace(day=1)
    else:
        start = first.replace(month=(first.month - 1) // 3 * 3 + 1, day=1)
    while start <= last and len(out) < 400:
        if kind == "daily":
            nxt = start + timedelta(days=1)
        elif kind == "weekly":
            nxt = start + timedelta(days=7)
        else:
            months = 1 if kind == "monthly" else 3
            month = start.month - 1 + months
            nxt = date(start.year + month // 12, month % 12 + 1, 1)
        out.append((start, nxt - timedelta(days=1)))
        start = nxt
    return out


def _actual(goal: dict[str, Any], trades: list[dict[str, Any]]) -> float | None:
    groups = T.decisions(trades)
    pnls = [float(sum(t["net_pnl"] for t in g)) for g in groups.values()]
    metric = goal["metric"]
    if metric == "net_pnl":
        return round(float(sum(t["net_pnl"] for t in trades)), 2)
    if metric == "gross_pnl":
        return round(float(sum(t.get("gross_pnl") or 0 for t in trades)), 2)
    if metric == "win_rate":
        decided = [p for p in pnls if p != 0]
        return round(100 * sum(p > 0 for p in decided) / len(decided), 2) if decided else None
    if metric == "expectancy":
        return round(sum(pnls) / len(pnls), 2) if pnls else None
    if metric == "profit_factor":
        loss = -sum(p for p in pnls if p < 0)
        return round(sum(p for p in pnls if p > 0) / loss, 2) if loss else None
    if metric == "max_trades_per_day":
        per_day: dict[str, int] = {}
        for t in trades:
            per_day[t["trade_date"][:10]] = per_day.get(t["trade_date"][:10], 0) + 1
        return float(max(per_day.values(), default=0))
    if metric == "a_plus_rate":
        if not trades:
            return None
        return round(100.0 * sum(1 for t in trades if t.get("grade") == "A+") / len(trades), 2)
    return None


async def goal_snapshots(ctx: Ctx) -> Result:
    goal = owned(ctx, "goal", path_int(ctx, "id"), "Goal")
    zone = ZoneInfo(ctx.tz)
    today = datetime.fromtimestamp(ctx.now, zone).date()
    created = datetime.fromisoformat(goal["created_at"].replace("Z", "+00:00"))
    first = max(created.astimezone(zone).date(), today - timedelta(days=365))
    trades = T.user_trades(ctx.store, ctx.uid)
    if goal.get("account_id"):
        trades = [t for t in trades if t["account_id"] == goal["account_id"]]
    start_filter = param(ctx, "from", day())
    end_filter = param(ctx, "to", day())
    rows = []
    for index, (start, end) in enumerate(_periods(goal, first, today)):
        if (start_filter and end.isoformat() < start_filter) or (
            end_filter and start.isoformat() > end_filter
        ):
            continue
        window = {"from": start.isoformat(), "to": end.isoformat()}
        lo, hi, _ = T.date_window(window, ctx.tz, ctx.now, default_days=None)
        in_period = T.in_window(trades, lo, hi)
        actual = _actual(goal, in_period)
        achieved = None
        if actual is not None:
            target = float(goal["target_value"])
            achieved = actual >= target if goal["direction"] == "at_least" else actual <= target
        rows.append(
            {
                "snapshot_id": goal["goal_id"] * 100_000 + index,
                "goal_id": goal["goal_id"],
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "target": goal["target_value"],
                "actual": actual,
                "achieved": achieved,
                "snapshot_data": {
                    "trades": len(in_period),
                    "decisions": len(T.decisions(in_period)),
                    "net_pnl": round(sum(t["net_pnl"] for t in in_period), 2),
                },
            }
        )
    rows.reverse()
    return listed(ctx, "snapshots", rows, cap=365)
