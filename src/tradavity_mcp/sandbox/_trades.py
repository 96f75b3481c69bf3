"""Trades: storing, serializing, filtering, and the stats and calendar built on them."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ._store import Store
from ._validate import ApiError, Invalid

__all__ = [
    "calendar",
    "date_window",
    "detail",
    "filter_trades",
    "row",
    "stats",
    "store_trade",
    "user_trades",
]

RANGES = ("today", "yesterday", "7d", "30d", "90d", "mtd", "ytd", "all")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Trade fields stored as the body gives them (absent: null).
_AS_GIVEN = (
    "quantity", "asset_config", "gross_pnl", "sl_price", "tp_price", "total_points",
    "rr_expected", "rr_realized", "holding_time", "market_condition", "trading_session",
    "volume", "emotional_state", "bias", "confidence_level", "exit_type", "setup_quality",
    "news_events", "strategy_id", "setup_id", "thought_process", "mistakes_made",
    "learning_notes", "general_notes",
)  # fmt: skip


def store_trade(
    store: Store,
    uid: int,
    body: dict[str, Any],
    now: float,
    *,
    tag_ids: list[int] | None = None,
    executions: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Insert a validated trade body; returns the stored document."""
    trade_id = store.next_id("trade")
    number = store.next_id(f"trade_number:{uid}")
    doc: dict[str, Any] = {
        "trade_id": trade_id,
        "trade_number": number,
        "account_id": body["account_id"],
        "trade_date": body["trade_date"],
        "symbol": str(body["symbol"]).upper(),
        "direction": body["direction"],
        "multiplier": body.get("multiplier", 1.0),
        "asset_type": body.get("asset_type") or "futures",
        "net_pnl": body["net_pnl"],
        "fees": body.get("fees", 0.0) or 0.0,
        "grade": body.get("trade_quality_grade"),
        **{name: body.get(name) for name in _AS_GIVEN},
        "is_copy": source is not None,
        "source_trade_id": source["trade_id"] if source else None,
        "source_trade_number": source["trade_number"] if source else None,
        "is_copy_source": False,
        "archived": False,
        "tag_ids": list(tag_ids or []),
        "executions": [],
        "confirmations": [],
        "created_at": _iso(now),
        "updated_at": _iso(now),
    }
    if doc["gross_pnl"] is None:
        doc["gross_pnl"] = round(doc["net_pnl"] + doc["fees"], 2)
    for i, fill in enumerate(executions or []):
        doc["executions"].append(
            {
                "execution_id": store.next_id("execution"),
                **fill,
                "sort_order": fill.get("sort_order", i),
            }
        )
    store.put("trade", trade_id, uid, doc)
    if source is not None and not source.get("is_copy_source"):
        store.put("trade", source["trade_id"], uid, {**source, "is_copy_source": True})
    return doc


def user_trades(store: Store, uid: int, *, include_archived: bool = False) -> list[dict[str, Any]]:
    trades = store.all("trade", uid)
    return [t for t in trades if include_archived or not t.get("archived")]


def _names(store: Store, uid: int, trade: dict[str, Any]) -> dict[str, Any]:
    account = store.get("account", trade["account_id"]) or {}
    strategy = store.get("strategy", trade["strategy_id"]) if trade.get("strategy_id") else None
    setup = None
    if strategy and trade.get("setup_id"):
        setup = next((s for s in strategy["setups"] if s["setup_id"] == trade["setup_id"]), None)
    tags = [store.get("tag", t) for t in trade.get("tag_ids", [])]
    return {
        "account": {
            "id": account.get("account_id"),
            "name": account.get("account_name"),
            "currency": account.get("currency"),
            "is_archived": bool(account.get("is_archived")),
        },
        "strategy": strategy["name"] if strategy else None,
        "setup": setup["name"] if setup else None,
        "tags": [t for t in tags if t],
    }


def row(store: Store, uid: int, trade: dict[str, Any]) -> dict[str, Any]:
    names = _names(store, uid, trade)
    return {
        "trade_number": trade["trade_number"],
        "trade_date": trade["trade_date"],
        "symbol": trade["symbol"],
        "direction": trade["direction"],
        "net_pnl": trade["net_pnl"],
        "account": names["account"],
        "grade": trade.get("grade"),
        "strategy": names["strategy"],
        "setup": names["setup"],
        "top_tag": names["tags"][0]["name"] if names["tags"] else None,
        "is_copy": trade.get("is_copy", False),
    }


_DETAIL_FIELDS = (
    "trade_number",
    "trade_date",
    "symbol",
    "asset_type",
    "direction",
    "quantity",
    "multiplier",
    "sl_price",
    "tp_price",
    "rr_expected",
    "rr_realized",
    "gross_pnl",
    "fees",
    "net_pnl",
    "total_points",
    "holding_time",
    "market_condition",
    "trading_session",
    "volume",
    "news_events",
    "grade",
    "emotional_state",
    "bias",
    "confidence_level",
    "setup_quality",
    "exit_type",
    "thought_process",
    "mistakes_made",
    "learning_notes",
    "general_notes",
    "is_copy",
    "is_copy_source",
    "source_trade_number",
    "created_at",
    "updated_at",
)


def source_of(store: Store, trade: dict[str, Any]) -> dict[str, Any]:
    """Copies share confirmations, screenshots and protocol responses with their source."""
    if trade.get("source_trade_id"):
        return store.get("trade", trade["source_trade_id"]) or trade
    return trade


def detail(store: Store, uid: int, trade: dict[str, Any], scopes: set[str]) -> dict[str, Any]:
    names = _names(store, uid, trade)
    out = {k: trade.get(k) for k in _DETAIL_FIELDS}
    out["account"] = names["account"]
    out["strategy"] = names["strategy"]
    out["setup"] = names["setup"]
    out["executions"] = sorted(
        trade["executions"],
        key=lambda e: (e["type"] != "entry", e["sort_order"], e["execution_id"]),
    )
    out["tags"] = [
        {"tag_id": t["tag_id"], "name": t["name"], "color": t["color"]} for t in names["tags"]
    ]
    src = source_of(store, trade)
    out["confirmations"] = src.get("confirmations", [])
    if "read:screenshots" in scopes:
        out["screenshots"] = [screenshot_meta(s) for s in screenshots_of(store, uid, src)]
    if "read:protocols" in scopes:
        out["protocol_responses"] = _protocol_responses(store, uid, trade, src)
    return out


def _protocol_responses(
    store: Store, uid: int, trade: dict[str, Any], src: dict[str, Any]
) -> list[dict[str, Any]]:
    """At most one response per protocol type: the trade's own before its source's, then
    completed before draft, then the newest."""
    best: dict[Any, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for resp in store.all("response", uid):
        linked = resp.get("trade_id")
        if linked is None or linked not in {trade["trade_id"], src["trade_id"]}:
            continue
        proto = store.get("protocol", resp["protocol_id"]) or {}
        own = linked == trade["trade_id"]
        rank = (
            own,
            resp["status"] == "completed",
            resp.get("completed_at") or resp["created_at"],
            resp["response_id"],
        )
        kind = proto.get("type")
        if kind in best and best[kind][0] >= rank:
            continue
        best[kind] = (
            rank,
            {
                "response_id": resp["response_id"],
                "protocol_id": resp["protocol_id"],
                "protocol_type": proto.get("type"),
                "protocol_name": proto.get("name"),
                "status": resp["status"],
                "completion_pct": resp["completion_pct"],
                "completed_at": resp.get("completed_at"),
                "source": "trade" if own else "source",
            },
        )
    rows = [row for _, row in best.values()]
    rows.sort(key=lambda r: r["response_id"])
    return rows


def screenshots_of(store: Store, uid: int, trade: dict[str, Any]) -> list[dict[str, Any]]:
    shots = [
        s
        for s in store.all("screenshot", uid)
        if s["trade_id"] == trade["trade_id"] and not s.get("archived")
    ]
    return sorted(shots, key=lambda s: (s["sort_order"], s["screenshot_id"]))


def screenshot_meta(shot: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in shot.items() if k not in {"data_b64", "trade_id", "archived"}}
    meta["download_url"] = (
        f"/api/v1/trades/{shot['trade_number']}/screenshots/{shot['screenshot_id']}"
    )
    return meta


def screenshot_bytes(shot: dict[str, Any]) -> bytes:
    return base64.b64decode(shot["data_b64"])


# --- dates in the user's timezone ------------------------------------------------------------


def _parse_day(value: str, name: str) -> date:
    text = value.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise Invalid({name: "must be a date (YYYY-MM-DD or ISO 8601)"}) from None


def date_window(
    params: dict[str, str],
    tz: str,
    now: float,
    *,
    default_days: int | None = 30,
    require: bool = False,
) -> tuple[datetime | None, datetime | None, dict[str, Any]]:
    """[start, end) in UTC for `range` or `from`/`to` (user-timezone dates)."""
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now, zone).date()
    rng = params.get("range")
    start_day: date | None
    end_day: date | None
    if rng is not None:
        if rng not in RANGES:
            raise Invalid({"range": "is not a known range"}, allowed=list(RANGES))
        start_day, end_day = {
            "today": (today, today),
            "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
            "7d": (today - timedelta(days=6), today),
            "30d": (today - timedelta(days=29), today),
            "90d": (today - timedelta(days=89), today),
            "mtd": (today.replace(day=1), today),
            "ytd": (today.replace(month=1, day=1), today),
            "all": (None, None),
        }[rng]
    else:
        start_day = _parse_day(params["from"], "from") if params.get("from") else None
        end_day = _parse_day(params["to"], "to") if params.get("to") else None
        if require and (start_day is None or end_day is None):
            raise Invalid({"from": "from and to are required unless range is given"})
        if default_days is not None:
            start_day = start_day or today - timedelta(days=default_days)
            end_day = end_day or today
    start = datetime.combine(start_day, time(0), zone).astimezone(UTC) if start_day else None
    end = (
        datetime.combine(end_day + timedelta(days=1), time(0), zone).astimezone(UTC)
        if end_day
        else None
    )
    echo = {
        "from": start_day.isoformat() if start_day else None,
        "to": end_day.isoformat() if end_day else None,
        "range": rng,
    }
    return start, end, echo


def _moment(trade: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(trade["trade_date"].replace("Z", "+00:00"))


def in_window(
    trades: Iterable[dict[str, Any]], start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    return [
        t
        for t in trades
        if (start is None or _moment(t) >= start) and (end is None or _moment(t) < end)
    ]


def resolve_account(store: Store, uid: int, ref: str | None) -> dict[str, Any] | None:
    if ref is None or ref == "":
        return None
    accounts = store.all("account", uid)
    if ref.strip().isdigit():
        found = next((a for a in accounts if a["account_id"] == int(ref)), None)
    else:
        # A name an archived and an active account share means the active one.
        named = [a for a in accounts if a["account_name"].casefold() == ref.strip().casefold()]
        named.sort(key=lambda a: (bool(a.get("is_archived")), a["account_id"]))
        found = named[0] if named else None
    if found is None:
        raise ApiError(404, "not_found", "Account not found.")
    return found


def be_window(store: Store, uid: int, account: dict[str, Any] | None) -> tuple[float, float]:
    if account is None:
        active = sorted(
            (a for a in store.all("account", uid) if not a.get("is_archived")),
            key=lambda a: a["account_id"],
        )
        account = active[0] if active else None
    if account is None:
        return 0.0, 0.0
    return float(account["breakeven_offset_low"]), float(account["breakeven_offset_high"])


def classify(pnl: float, window: tuple[float, float]) -> str:
    low, high = window
    if low <= pnl <= high:
        return "breakeven"
    return "win" if pnl > 0 else "loss"


def decisions(trades: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        groups[t.get("source_trade_id") or t["trade_id"]].append(t)
    return groups


def _bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in {"1", "true", "yes"}:
        return True
    if value.lower() in {"0", "false", "no"}:
        return False
    raise Invalid({name: "must be true or false"})


def filter_trades(
    store: Store, uid: int, tz: str, now: float, params: dict[str, str]
) -> list[dict[str, Any]]:
    include_archived = bool(_bool(params.get("include_archived"), "include_archived"))
    trades = user_trades(store, uid, include_archived=include_archived)
    start, end, _ = date_window(params, tz, now, default_days=None)
    trades = _by_reference(store, uid, in_window(trades, start, end), params)
    trades = _by_value(store, uid, trades, params)
    return sorted(trades, key=lambda t: (t["trade_date"], t["trade_number"]), reverse=True)


def _by_reference(
    store: Store, uid: int, trades: list[dict[str, Any]], params: dict[str, str]
) -> list[dict[str, Any]]:
    """The filters that name another record: account, strategy, setup, tag."""
    account_ref = params.get("account") or params.get("account_id")
    if account_ref:
        account = resolve_account(store, uid, account_ref)
        assert account is not None
        trades = [t for t in trades if t["account_id"] == account["account_id"]]
    strategy_ref = params.get("strategy") or params.get("strategy_id")
    if strategy_ref:
        ids = {
            s["strategy_id"]
            for s in store.all("strategy", uid)
            if (strategy_ref.isdigit() and s["strategy_id"] == int(strategy_ref))
            or s["name"].casefold() == strategy_ref.casefold()
        }
        trades = [t for t in trades if t.get("strategy_id") in ids]
    if params.get("setup"):
        wanted = params["setup"].casefold()
        setup_ids = {
            su["setup_id"]
            for s in store.all("strategy", uid)
            for su in s["setups"]
            if su["name"].casefold() == wanted
        }
        trades = [t for t in trades if t.get("setup_id") in setup_ids]
    if params.get("tag"):
        tag_ids = {
            t["tag_id"]
            for t in store.all("tag", uid)
            if t["name"].casefold() == params["tag"].casefold()
        }
        trades = [t for t in trades if tag_ids & set(t.get("tag_ids", []))]
    return trades


def _by_value(
    store: Store, uid: int, trades: list[dict[str, Any]], params: dict[str, str]
) -> list[dict[str, Any]]:
    """The filters on the trade's own values: symbol, direction, grade, outcome, P&L, copy."""
    if params.get("symbol"):
        trades = [t for t in trades if t["symbol"].casefold() == params["symbol"].casefold()]
    if params.get("direction"):
        if params["direction"] not in {"long", "short"}:
            raise Invalid({"direction": "must be long or short"}, allowed=["long", "short"])
        trades = [t for t in trades if t["direction"] == params["direction"]]
    grade = params.get("grade") or params.get("trade_quality_grade")
    if grade:
        allowed = ["A+", "A", "B", "C", "F"]
        if grade not in allowed:
            raise Invalid({"grade": "is not a known grade"}, allowed=allowed)
        trades = [t for t in trades if t.get("grade") == grade]
    if params.get("outcome"):
        allowed = ["win", "loss", "breakeven"]
        if params["outcome"] not in allowed:
            raise Invalid({"outcome": "is not a known outcome"}, allowed=allowed)
        trades = [
            t
            for t in trades
            if classify(t["net_pnl"], be_window(store, uid, store.get("account", t["account_id"])))
            == params["outcome"]
        ]
    for names, op in ((("pnl_min", "net_pnl_gte"), "ge"), (("pnl_max", "net_pnl_lte"), "le")):
        raw = params.get(names[0]) or params.get(names[1])
        if raw:
            try:
                bound = float(raw)
            except ValueError:
                raise Invalid({names[0]: "must be a number"}) from None
            trades = [
                t
                for t in trades
                if (t["net_pnl"] >= bound if op == "ge" else t["net_pnl"] <= bound)
            ]
    is_copy = _bool(params.get("is_copy"), "is_copy")
    if is_copy is not None:
        trades = [t for t in trades if bool(t.get("is_copy")) == is_copy]
    return trades


def encode_cursor(trade: dict[str, Any]) -> str:
    raw = json.dumps([trade["trade_date"], trade["trade_number"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(trades: list[dict[str, Any]], cursor: str) -> list[dict[str, Any]]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        when, number = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise Invalid({"cursor": "is not a cursor from this API"}) from None
    return [t for t in trades if (t["trade_date"], t["trade_number"]) < (when, number)]


# --- stats and calendar ------------------------------------------------------------------------


def _r(value: float) -> float:
    return round(value, 2)


def _decision_block(
    groups: dict[int, list[dict[str, Any]]], window: tuple[float, float]
) -> dict[str, Any]:
    pnls = [sum(t["net_pnl"] for t in g) for g in groups.values()]
    wins = [p for p in pnls if classify(p, window) == "win"]
    losses = [p for p in pnls if classify(p, window) == "loss"]
    count = len(pnls)
    decided = len(wins) + len(losses)
    gross_win, gross_loss = sum(wins), -sum(losses)
    return {
        "count": count,
        "wins": len(wins),
        "losses": len(losses),
        "breakevens": count - decided,
        "win_rate_pct": _r(100 * len(wins) / decided) if decided else 0.0,
        "avg_win": _r(gross_win / len(wins)) if wins else 0.0,
        "avg_loss": _r(-gross_loss / len(losses)) if losses else 0.0,
        "expectancy": _r(sum(pnls) / count) if count else 0.0,
        "profit_factor": _r(gross_win / gross_loss) if gross_loss else None,
    }


def stats(
    store: Store, uid: int, tz: str, now: float, kind: str, params: dict[str, str]
) -> dict[str, Any]:
    start, end, echo = date_window(params, tz, now)
    account = resolve_account(store, uid, params.get("account") or params.get("account_id"))
    trades = in_window(user_trades(store, uid), start, end)
    if account is not None:
        trades = [t for t in trades if t["account_id"] == account["account_id"]]
    window = be_window(store, uid, account)
    offset = {"low": window[0], "high": window[1]}
    if kind == "summary":
        pnls = [t["net_pnl"] for t in trades]
        return {
            "range": echo,
            "totals": {
                "trade_rows": len(trades),
                "total_net_pnl": _r(sum(pnls)),
                "total_gross_pnl": _r(sum(t.get("gross_pnl") or 0 for t in trades)),
                "total_fees": _r(sum(t.get("fees") or 0 for t in trades)),
                "best_trade": _r(max(pnls)) if pnls else None,
                "worst_trade": _r(min(pnls)) if pnls else None,
                "avg_pnl": _r(sum(pnls) / len(pnls)) if pnls else 0.0,
            },
            "decisions": _decision_block(decisions(trades), window),
            "breakeven_offset": offset,
        }
    key = "symbol" if kind == "by-symbol" else "strategy"
    buckets: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for group_id, group in decisions(trades).items():
        lead = group[0]
        if key == "symbol":
            name = lead["symbol"]
        else:
            strategy = (
                store.get("strategy", lead["strategy_id"]) if lead.get("strategy_id") else None
            )
            name = strategy["name"] if strategy else "(no strategy)"
        buckets[name][group_id] = group
    rows = []
    for name, groups in sorted(buckets.items()):
        block = _decision_block(groups, window)
        net = sum(t["net_pnl"] for g in groups.values() for t in g)
        rows.append({key: name, "net_pnl": _r(net), **block})
    rows.sort(key=lambda r: r["net_pnl"], reverse=True)
    return {"range": echo, "rows": rows, "breakeven_offset": offset}


def calendar(store: Store, uid: int, tz: str, now: float, params: dict[str, str]) -> dict[str, Any]:
    start, end, echo = date_window(params, tz, now, default_days=None, require=True)
    account = resolve_account(store, uid, params.get("account") or params.get("account_id"))
    include_archived = _bool(params.get("include_archived_accounts"), "include_archived_accounts")
    trades = in_window(user_trades(store, uid), start, end)
    if account is not None:
        trades = [t for t in trades if t["account_id"] == account["account_id"]]
    elif not include_archived:
        archived = {a["account_id"] for a in store.all("account", uid) if a.get("is_archived")}
        trades = [t for t in trades if t["account_id"] not in archived]
    window = be_window(store, uid, account)
    zone = ZoneInfo(tz)
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        by_day[_moment(t).astimezone(zone).date().isoformat()].append(t)
    days = []
    summary = {
        "traded_days": 0,
        "winning_days": 0,
        "losing_days": 0,
        "flat_days": 0,
        "total_trades": 0,
        "total_net_pnl": 0.0,
    }
    for day in sorted(by_day):
        rows = by_day[day]
        groups = decisions(rows)
        pnls = [sum(t["net_pnl"] for t in g) for g in groups.values()]
        net = _r(sum(t["net_pnl"] for t in rows))
        days.append(
            {
                "date": day,
                "net_pnl": net,
                "trade_count": len(groups),
                "winning_trades": sum(1 for p in pnls if classify(p, window) == "win"),
                "losing_trades": sum(1 for p in pnls if classify(p, window) == "loss"),
            }
        )
        summary["traded_days"] += 1
        summary["total_trades"] += len(groups)
        summary["total_net_pnl"] += net
        day_class = classify(net, window)
        summary[
            {"win": "winning_days", "loss": "losing_days", "breakeven": "flat_days"}[day_class]
        ] += 1
    summary["total_net_pnl"] = _r(summary["total_net_pnl"])
    return {
        "range": echo,
        "days": days,
        "summary": {
            **summary,
            "timezone": tz,
            "breakeven_offset": {"low": window[0], "high": window[1]},
        },
    }
