"""Demo data that makes the journal feel real, the same for the same seed and day.

Three users: the pro-plan demo user (about 200 trades over 90 days on three accounts,
copy-trade decisions, tags, strategies, checklists, two broker connections), a
free-plan user and a second pro user with small journals of their own.

`demo_days` stretches the demo user's journal (same trades a day on average, so a
730-day journal holds about 1,600 trades). A journal longer than the default also
wanders into the rest of the futures catalog now and then, as traders do over the
years; the default journal is the same, trade for trade, as it always was.
"""

from __future__ import annotations

import hashlib
import random
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ._catalog import EMOTIONS, INSTRUMENTS, SCOPES
from ._store import Store
from ._trades import store_trade

__all__ = [
    "DEFAULT_DEMO_DAYS",
    "DEMO_KEY",
    "EXPIRED_KEY",
    "FREE_KEY",
    "MAX_DEMO_DAYS",
    "READONLY_KEY",
    "REVOKED_KEY",
    "SECOND_PRO_KEY",
    "hash_key",
    "iso",
    "seed",
]

DEMO_KEY = "tvty_0123456789abcdef0123456789abcdef0123456789abcdef"
FREE_KEY = "tvty_" + "fee1" * 12
SECOND_PRO_KEY = "tvty_" + "5ec0" * 12
READONLY_KEY = "tvty_" + "4ead" * 12
REVOKED_KEY = "tvty_" + "dead" * 12
EXPIRED_KEY = "tvty_" + "e1a5" * 12

DEMO_USER, FREE_USER, SECOND_USER = 1, 2, 3

#: The demo journal's length, and how many trades it holds at that length.
DEFAULT_DEMO_DAYS = 90
_DEMO_TRADES = 196
#: Ten years: enough for any growth measurement, small enough to seed in seconds.
MAX_DEMO_DAYS = 3650


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def iso(ts: float | datetime) -> str:
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Seeder:
    def __init__(self, store: Store, now: float, seed_value: int) -> None:
        self.s = store
        self.now = now
        self.rng = random.Random(seed_value)

    def id(self, kind: str) -> int:
        return self.s.next_id(kind)

    # --- users and keys ----------------------------------------------------------------

    def user(self, uid: int, name: str, plan: str, tz: str) -> None:
        self.s.put(
            "user",
            uid,
            uid,
            {
                "user_id": uid,
                "name": name,
                "email": f"{name.split(maxsplit=1)[0].lower()}@example.com",
                "plan": plan,
                "timezone": tz,
                "currency": "USD",
                "week_start": "monday",
                "created_at": iso(self.now - 400 * 86400),
            },
        )

    def key(self, uid: int, key: str, name: str, scopes: list[str], **extra: Any) -> None:
        kid = self.id("key")
        self.s.put(
            "key",
            kid,
            uid,
            {
                "key_id": kid,
                "user_id": uid,
                "hash": hash_key(key),
                "prefix": key[:12],
                "name": name,
                "scopes": scopes,
                "revoked": False,
                "expires_at": None,
                "created_at": iso(self.now - 30 * 86400),
                **extra,
            },
        )

    # --- reference data --------------------------------------------------------------------

    def account(
        self,
        uid: int,
        name: str,
        kind: str,
        broker: str | None,
        low: float,
        high: float,
        *,
        archived: bool = False,
        balance: dict[str, Any] | None = None,
    ) -> int:
        aid = self.id("account")
        self.s.put(
            "account",
            aid,
            uid,
            {
                "account_id": aid,
                "account_name": name,
                "account_type": kind,
                "currency": "USD",
                "broker_key": broker,
                "breakeven_offset_low": low,
                "breakeven_offset_high": high,
                "is_archived": archived,
                "balance": balance,
                "trade_template_id": None,
                "created_at": iso(self.now - 200 * 86400),
            },
        )
        return aid

    def tags(self, uid: int, spec: dict[str, list[str]]) -> dict[str, int]:
        colours = ["#ef4444", "#f59e0b", "#10b981", "#3b82f6", "#8b5cf6", "#ec4899"]
        out: dict[str, int] = {}
        for cat_name, names in spec.items():
            cid = self.id("tag_category")
            self.s.put("tag_category", cid, uid, {"category_id": cid, "name": cat_name})
            for i, name in enumerate(names):
                tid = self.id("tag")
                self.s.put(
                    "tag",
                    tid,
                    uid,
                    {
                        "tag_id": tid,
                        "name": name,
                        "category_id": cid,
                        "color": colours[i % len(colours)],
                        "type": "mistake" if cat_name == "Mistakes" else "custom",
                    },
                )
                out[name] = tid
        return out

    def strategy(self, uid: int, name: str, setups: dict[str, list[str]]) -> dict[str, Any]:
        sid = self.id("strategy")
        rows = []
        for order, (setup, confirmations) in enumerate(setups.items()):
            setup_id = self.id("setup")
            rows.append(
                {
                    "setup_id": setup_id,
                    "name": setup,
                    "description": None,
                    "sort_order": order,
                    "confirmations": [
                        {
                            "confirmation_id": self.id("confirmation"),
                            "name": c,
                            "description": None,
                            "sort_order": j,
                        }
                        for j, c in enumerate(confirmations)
                    ],
                }
            )
        doc = {
            "strategy_id": sid,
            "name": name,
            "description": f"{name} playbook",
            "color_tag": "#1d4ed8",
            "account_id": None,
            "copy_group_id": None,
            "risk_rules": {"max_risk_r": 1},
            "exit_rules": None,
            "optimal_conditions": None,
            "setups": rows,
        }
        self.s.put("strategy", sid, uid, doc)
        return doc

    def protocol(
        self,
        uid: int,
        kind: str,
        name: str,
        sections: list[tuple[str, list[tuple[str, str, list[str] | None, bool]]]],
    ) -> None:
        pid = self.id("protocol")
        out = []
        for order, (section, items) in enumerate(sections):
            out.append(
                {
                    "section_id": self.id("protocol_section"),
                    "name": section,
                    "sort_order": order,
                    "items": [
                        {
                            "item_id": self.id("protocol_item"),
                            "item_type": t,
                            "label": label,
                            "options": opts,
                            "is_required": req,
                            "sort_order": j,
                        }
                        for j, (t, label, opts, req) in enumerate(items)
                    ],
                }
            )
        self.s.put(
            "protocol",
            pid,
            uid,
            {
                "protocol_id": pid,
                "type": kind,
                "name": name,
                "description": None,
                "is_active": True,
                "is_default": True,
                "sections": out,
                "created_at": iso(self.now - 120 * 86400),
            },
        )

    def connection(
        self, uid: int, account_id: int, broker: str, broker_name: str, *, expired: bool = False
    ) -> None:
        cid = self.id("connection")
        self.s.put(
            "connection",
            cid,
            uid,
            {
                "connection_id": cid,
                "broker_key": broker,
                "broker_name": broker_name,
                "account_id": account_id,
                "is_active": True,
                "status": "token_expired" if expired else "active",
                "token_status": "expired" if expired else "valid",
                "created_at": iso(self.now - 60 * 86400),
                "schedule_anchor": self.now - 7 * 60,
                "last_manual_at": None,
                "last_sync_at": None,
                "scheduled_until": self.now - 7 * 60,
                "imports": 0,
            },
        )

    def extras(self, uid: int, apex: int, topstep: int) -> None:
        """Goals, a copy group, balance events and a payout (no randomness: adding these
        leaves every other seeded row as it was)."""
        created = iso(self.now - 75 * 86400)
        gid = self.id("copy_group")
        self.s.put(
            "copy_group",
            gid,
            uid,
            {
                "group_id": gid,
                "name": "Apex + Topstep",
                "copy_mode": "master",
                "master_account_id": apex,
                "scale_fees": True,
                "is_active": True,
                "created_at": created,
                "members": [
                    {
                        "id": self.id("copy_group_member"),
                        "account_id": apex,
                        "quantity_multiplier": 1.0,
                        "sort_order": 0,
                    },
                    {
                        "id": self.id("copy_group_member"),
                        "account_id": topstep,
                        "quantity_multiplier": 0.5,
                        "sort_order": 1,
                    },
                ],
            },
        )
        for name, metric, target, direction, timeframe, status, account in [
            ("Monthly profit target", "net_pnl", 5000, "at_least", "monthly", "active", None),
            ("Max 5 trades a day", "max_trades_per_day", 5, "at_most", "daily", "active", None),
            ("Weekly win rate 55%", "win_rate", 55, "at_least", "weekly", "active", apex),
            ("A+ setups only", "a_plus_rate", 30, "at_least", "monthly", "paused", None),
        ]:
            goal_id = self.id("goal")
            self.s.put(
                "goal",
                goal_id,
                uid,
                {
                    "goal_id": goal_id,
                    "goal_name": name,
                    "metric": metric,
                    "target_value": target,
                    "direction": direction,
                    "timeframe": timeframe,
                    "custom_start": None,
                    "custom_end": None,
                    "status": status,
                    "scope": f"account_{account}" if account else "all",
                    "account_id": account,
                    "copy_group_id": None,
                    "created_at": created,
                },
            )
        for days_ago, kind, note, bal in [
            (60, "status_change", "Evaluation passed; account funded.", 50000.0),
            (30, "manual_update", "Reconciled with the broker statement.", 51210.25),
            (12, "rule_violation", "Daily loss limit approached (90%).", 51880.0),
            (5, "payout", "Payout requested: 1,000.00", 52340.5),
        ]:
            eid = self.id("balance_event")
            self.s.put(
                "balance_event",
                eid,
                uid,
                {
                    "event_id": eid,
                    "account_id": apex,
                    "event_type": kind,
                    "note": note,
                    "balance_at_event": bal,
                    "pnl_at_event": round(bal - 50000, 2),
                    "rule_type": "max_daily_loss" if kind == "rule_violation" else None,
                    "rule_limit": 1100.0 if kind == "rule_violation" else None,
                    "rule_actual": 990.0 if kind == "rule_violation" else None,
                    "created_at": iso(self.now - days_ago * 86400),
                },
            )
        pid = self.id("payout")
        self.s.put(
            "payout",
            pid,
            uid,
            {
                "payout_id": pid,
                "account_id": apex,
                "status": "paid",
                "gross_amount": 1000.0,
                "profit_split_pct": 90.0,
                "firm_cut": 100.0,
                "net_amount": 900.0,
                "balance_before": 53340.5,
                "balance_after": 52340.5,
                "total_profit_at_request": 3340.5,
                "note": "First payout",
                "requested_at": iso(self.now - 5 * 86400),
            },
        )

    # --- trades ----------------------------------------------------------------------------

    def trades(
        self,
        uid: int,
        tz: str,
        count: int,
        days: int,
        accounts: list[int],
        tag_ids: list[int],
        strategies: list[dict[str, Any]],
        copies: tuple[int, int] | None,
        *,
        wander: bool = False,
    ) -> None:
        zone = ZoneInfo(tz)
        today = datetime.fromtimestamp(self.now, zone).date()
        symbols = [
            ("MNQ", 21000, 2, 0.25),
            ("MES", 6000, 5, 0.25),
            ("NQ", 21000, 20, 0.25),
            ("ES", 6000, 50, 0.25),
            ("CL", 72, 1000, 0.01),
            ("GC", 2650, 100, 0.1),
            ("6E", 1.08, 125000, 0.00005),
            ("EURUSD", 1.08, 100000, 0.0001),
        ]
        weights: list[float] = [30, 20, 10, 10, 8, 8, 4, 10]
        if wander:
            core = {s[0] for s in symbols}
            for inst in INSTRUMENTS:
                if inst["asset_type"] == "futures" and inst["symbol"] not in core:
                    tick = float(inst["tick_size"])
                    symbols.append((inst["symbol"], tick * 4000, inst["multiplier"], tick))
                    weights.append(0.5)
        moments: list[datetime] = []
        for _ in range(count):
            day = today - timedelta(days=self.rng.randrange(0, days))
            while day.weekday() >= 5:
                day -= timedelta(days=1)
            minute = 9 * 60 + 30 + self.rng.randrange(0, 6 * 60)
            local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
            if local.timestamp() > self.now:
                local = datetime.fromtimestamp(self.now - 3600, zone)
            moments.append(local)
        moments.sort()
        for local in moments:
            symbol, base, mult, tick = self.rng.choices(symbols, weights)[0]
            qty = self.rng.choice([1, 1, 2, 2, 3, 5]) if mult <= 5 else self.rng.choice([1, 1, 2])
            roll = self.rng.random()
            if roll < 0.06:
                net = round(self.rng.uniform(-2.5, 2.5), 2)
            elif roll < 0.58:
                net = round(abs(self.rng.gauss(140, 90)) + 5, 2)
            else:
                net = -round(abs(self.rng.gauss(110, 70)) + 5, 2)
            fees = round(0.62 * qty * (2 if mult > 5 else 1), 2)
            direction = self.rng.choice(["long", "short"])
            points = round(net / (mult * qty), 4) if mult * qty else 0
            entry = round(base * (1 + self.rng.uniform(-0.02, 0.02)) / tick) * tick
            exit_ = entry + (points if direction == "long" else -points)
            strategy = self.rng.choice([*strategies, None])
            setup = self.rng.choice(strategy["setups"]) if strategy else None
            account = self.rng.choices(accounts, [5, 3, 2][: len(accounts)])[0]
            holding = self.rng.randrange(30, 3600)
            body: dict[str, Any] = {
                "account_id": account,
                "trade_date": iso(local),
                "symbol": symbol,
                "direction": direction,
                "quantity": qty,
                "multiplier": mult,
                "asset_type": "forex" if symbol == "EURUSD" else "futures",
                "net_pnl": net,
                "fees": fees,
                "gross_pnl": round(net + fees, 2),
                "total_points": points,
                "trade_quality_grade": self.rng.choices(
                    ["A+", "A", "B", "C", "F", None], [1, 3, 4, 2, 1, 2]
                )[0],
                "emotional_state": self.rng.choice(EMOTIONS + [None] * 6),
                "confidence_level": self.rng.randint(3, 9),
                "market_condition": self.rng.choice(["trending", "ranging", "choppy", "breakout"]),
                "trading_session": "newyork",
                "holding_time": holding,
                "strategy_id": strategy["strategy_id"] if strategy else None,
                "setup_id": setup["setup_id"] if setup else None,
                "general_notes": None,
            }
            executions = [
                {
                    "type": "entry",
                    "price": round(entry, 6),
                    "quantity": qty,
                    "execution_time": iso(local),
                    "sort_order": 0,
                },
                {
                    "type": "exit",
                    "price": round(exit_, 6),
                    "quantity": qty,
                    "execution_time": iso(local + timedelta(seconds=holding)),
                    "sort_order": 0,
                },
            ]
            tags = self.rng.sample(tag_ids, self.rng.choice([0, 1, 1, 2])) if tag_ids else []
            trade = store_trade(self.s, uid, body, self.now, tag_ids=tags, executions=executions)
            if copies and account == copies[0] and self.rng.random() < 0.25:
                # The copy group trades half the size on the second account (at least one
                # contract): its gross, fees and net scale together, so gross - fees = net
                # on the copy as on its source.
                copy_qty = max(1, qty // 2)
                scale = copy_qty / qty
                copy_fees = round(fees * scale, 2)
                copy_gross = round((net + fees) * scale, 2)
                copy = dict(
                    body,
                    account_id=copies[1],
                    quantity=copy_qty,
                    fees=copy_fees,
                    gross_pnl=copy_gross,
                    net_pnl=round(copy_gross - copy_fees, 2),
                )
                fills = [{**fill, "quantity": copy_qty} for fill in executions]
                store_trade(self.s, uid, copy, self.now, tag_ids=[], executions=fills, source=trade)


#: Journals seeded in this process at a moment that stands still (`remember`), by (now,
#: seed, days), newest last: sandboxes made at one moment (the tests', the drills', the
#: benchmarks') copy the database (~4 ms) rather than build it again (~16 ms).
_SEEDED: dict[tuple[float, int, int], bytes] = {}
_SEEDED_KEPT = 4
_SEEDED_LOCK = threading.Lock()


def seed(
    store: Store,
    now: float,
    seed_value: int = 42,
    *,
    demo_days: int = DEFAULT_DEMO_DAYS,
    remember: bool = False,
) -> None:
    """Fill an empty store; the demo user's journal spans `demo_days` days. `remember`
    keeps a copy for the next store seeded at this very moment (a clock that stands
    still); a running clock never comes back to it."""
    if not 1 <= demo_days <= MAX_DEMO_DAYS:
        raise ValueError(f"demo_days must be 1 to {MAX_DEMO_DAYS}; got {demo_days}")
    key = (now, seed_value, demo_days)
    with _SEEDED_LOCK:
        image = _SEEDED.get(key)
    if image is not None:
        store.restore(image)
        return
    _build(store, now, seed_value, demo_days)
    if not remember:
        return
    image = store.image()
    with _SEEDED_LOCK:
        _SEEDED[key] = image
        while len(_SEEDED) > _SEEDED_KEPT:
            _SEEDED.pop(next(iter(_SEEDED)))


def _build(store: Store, now: float, seed_value: int, demo_days: int) -> None:
    s = _Seeder(store, now, seed_value)
    read_all = [x for x in SCOPES if x.startswith("read:")]
    with store.transaction():
        s.user(DEMO_USER, "Dana Demo", "pro", "America/New_York")
        s.user(FREE_USER, "Frank Free", "free", "Europe/London")
        s.user(SECOND_USER, "Priya Pro", "pro", "Asia/Singapore")
        s.key(DEMO_USER, DEMO_KEY, "Demo agent", list(SCOPES))
        s.key(DEMO_USER, READONLY_KEY, "Read-only dashboard", read_all)
        s.key(DEMO_USER, REVOKED_KEY, "Old laptop", list(SCOPES), revoked=True)
        s.key(DEMO_USER, EXPIRED_KEY, "Trial script", list(SCOPES), expires_at=iso(now - 86400))
        s.key(FREE_USER, FREE_KEY, "Free agent", list(SCOPES))
        s.key(SECOND_USER, SECOND_PRO_KEY, "Second pro agent", list(SCOPES))

        apex = s.account(
            DEMO_USER,
            "Apex 50K",
            "funded",
            "tradovate",
            -5,
            5,
            balance={
                "starting_balance": 50000,
                "current_balance": 52340.5,
                "high_water_mark": 52890,
                "drawdown": 549.5,
                "profit_target": 3000,
                "max_daily_loss": 1100,
                "max_drawdown": 2500,
                "source_preset": "apex",
                "status": "active",
                "profit_split_pct": 90,
                "payout_deadline": None,
            },
        )
        topstep = s.account(DEMO_USER, "Topstep XFA", "trading_combine", "topstepx", -2, 2)
        live = s.account(DEMO_USER, "Personal Live", "live", "ninjatrader", 0, 0)
        s.account(DEMO_USER, "Old Sim", "demo", None, 0, 0, archived=True)
        tag_ids = s.tags(
            DEMO_USER,
            {
                "Mistakes": ["FOMO", "Revenge", "Overtrading", "Moved Stop", "Early Exit"],
                "Setups": ["Breakout", "Pullback", "Reversal", "A+ Setup", "Opening Range"],
                "Psychology": ["Confident", "Hesitant", "Tilted"],
            },
        )
        strategies = [
            s.strategy(
                DEMO_USER,
                "Opening Range Breakout",
                {
                    "ORB Long": ["Range under 40 points", "Volume spike on break"],
                    "ORB Short": ["Range under 40 points", "Below VWAP"],
                },
            ),
            s.strategy(
                DEMO_USER,
                "Trend Pullback",
                {
                    "9 EMA Pullback": ["Higher highs on 5m", "Pulled back to 9 EMA"],
                    "VWAP Reclaim": ["Reclaimed VWAP with volume"],
                },
            ),
            s.strategy(DEMO_USER, "Mean Reversion", {"Failed Breakout": ["Trapped traders"]}),
        ]
        s.protocol(
            DEMO_USER,
            "pre_trade",
            "Pre-Trade Checklist",
            [
                (
                    "Pre-flight",
                    [
                        ("checkbox", "Charts are loaded", None, True),
                        ("yes_no_na", "News in the next 30 minutes?", None, True),
                        ("select", "Bias", ["long", "short", "neutral"], True),
                    ],
                ),
                (
                    "Risk",
                    [
                        ("rating", "Conviction", None, True),
                        ("number", "Risk in R", None, False),
                        ("yes_no_na", "Stop placed before entry?", None, False),
                        ("text", "Plan", None, False),
                    ],
                ),
            ],
        )
        s.protocol(
            DEMO_USER,
            "end_of_day",
            "End-of-Day Review",
            [
                (
                    "Review",
                    [
                        ("rating", "Discipline", None, True),
                        ("yes_no_na", "Followed my rules?", None, True),
                        ("number", "Trades taken", None, False),
                        ("select", "Day type", ["trend", "range", "choppy"], False),
                    ],
                ),
                (
                    "Notes",
                    [
                        ("checkbox", "Journal complete", None, False),
                        ("text", "Biggest lesson", None, False),
                    ],
                ),
            ],
        )
        s.connection(DEMO_USER, apex, "tradovate", "Tradovate")
        s.connection(DEMO_USER, topstep, "rithmic", "Rithmic", expired=True)
        s.trades(
            DEMO_USER,
            "America/New_York",
            max(1, round(_DEMO_TRADES * demo_days / DEFAULT_DEMO_DAYS)),
            demo_days,
            [apex, topstep, live],
            list(tag_ids.values()),
            strategies,
            copies=(apex, topstep),
            wander=demo_days > DEFAULT_DEMO_DAYS,
        )

        s.extras(DEMO_USER, apex, topstep)

        free = s.account(FREE_USER, "Free Sim", "demo", "ninjatrader", 0, 0)
        free_tags = s.tags(FREE_USER, {"Mistakes": ["FOMO", "Chasing"], "Setups": ["Breakout"]})
        s.protocol(
            FREE_USER,
            "pre_trade",
            "My Checklist",
            [
                ("Checks", [("checkbox", "Plan ready", None, True)]),
            ],
        )
        s.connection(FREE_USER, free, "ninjatrader", "NinjaTrader")
        s.trades(FREE_USER, "Europe/London", 12, 30, [free], list(free_tags.values()), [], None)

        second = s.account(SECOND_USER, "Sim Pro", "demo", "tradovate", -1, 1)
        second_tags = s.tags(SECOND_USER, {"Setups": ["Breakout", "Range"]})
        s.connection(SECOND_USER, second, "tradovate", "Tradovate")
        s.trades(
            SECOND_USER, "Asia/Singapore", 6, 20, [second], list(second_tags.values()), [], None
        )


def today_in(tz: str, now: float) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(tz)).date()
