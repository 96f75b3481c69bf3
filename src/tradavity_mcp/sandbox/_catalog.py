"""Platform-managed reference data: emotions, instruments, brokers, prop-firm presets,
and the scope catalog."""

from __future__ import annotations

from typing import Any

__all__ = ["BROKERS", "EMOTIONS", "INSTRUMENTS", "PRESETS", "SCOPES", "SCOPE_CATALOG"]

EMOTIONS = [
    "calm",
    "confident",
    "focused",
    "patient",
    "neutral",
    "anxious",
    "fearful",
    "greedy",
    "frustrated",
    "impatient",
    "rushed",
    "bored",
    "euphoric",
    "hesitant",
    "overconfident",
    "revengeful",
    "tired",
    "distracted",
]

# symbol, name, asset_type, exchange, multiplier, tick_size
_FUTURES: list[tuple[str, str, str, float, float]] = [
    ("ES", "E-mini S&P 500", "CME", 50, 0.25),
    ("MES", "Micro E-mini S&P 500", "CME", 5, 0.25),
    ("NQ", "E-mini Nasdaq-100", "CME", 20, 0.25),
    ("MNQ", "Micro E-mini Nasdaq-100", "CME", 2, 0.25),
    ("YM", "E-mini Dow", "CBOT", 5, 1),
    ("MYM", "Micro E-mini Dow", "CBOT", 0.5, 1),
    ("RTY", "E-mini Russell 2000", "CME", 50, 0.1),
    ("M2K", "Micro E-mini Russell 2000", "CME", 5, 0.1),
    ("EMD", "E-mini S&P MidCap 400", "CME", 100, 0.1),
    ("NKD", "Nikkei 225 (USD)", "CME", 5, 5),
    ("CL", "Crude Oil", "NYMEX", 1000, 0.01),
    ("MCL", "Micro Crude Oil", "NYMEX", 100, 0.01),
    ("QM", "E-mini Crude Oil", "NYMEX", 500, 0.025),
    ("NG", "Natural Gas", "NYMEX", 10000, 0.001),
    ("RB", "RBOB Gasoline", "NYMEX", 42000, 0.0001),
    ("HO", "Heating Oil", "NYMEX", 42000, 0.0001),
    ("GC", "Gold", "COMEX", 100, 0.1),
    ("MGC", "Micro Gold", "COMEX", 10, 0.1),
    ("SI", "Silver", "COMEX", 5000, 0.005),
    ("SIL", "Micro Silver", "COMEX", 1000, 0.005),
    ("HG", "Copper", "COMEX", 25000, 0.0005),
    ("PL", "Platinum", "NYMEX", 50, 0.1),
    ("ZB", "30-Year T-Bond", "CBOT", 1000, 0.03125),
    ("ZN", "10-Year T-Note", "CBOT", 1000, 0.015625),
    ("ZF", "5-Year T-Note", "CBOT", 1000, 0.0078125),
    ("ZT", "2-Year T-Note", "CBOT", 2000, 0.00390625),
    ("UB", "Ultra T-Bond", "CBOT", 1000, 0.03125),
    ("ZC", "Corn", "CBOT", 50, 0.25),
    ("ZS", "Soybeans", "CBOT", 50, 0.25),
    ("ZW", "Wheat", "CBOT", 50, 0.25),
    ("ZL", "Soybean Oil", "CBOT", 600, 0.01),
    ("ZM", "Soybean Meal", "CBOT", 100, 0.1),
    ("LE", "Live Cattle", "CME", 400, 0.025),
    ("HE", "Lean Hogs", "CME", 400, 0.025),
    ("6E", "Euro FX", "CME", 125000, 0.00005),
    ("M6E", "Micro Euro FX", "CME", 12500, 0.0001),
    ("6B", "British Pound", "CME", 62500, 0.0001),
    ("6J", "Japanese Yen", "CME", 12500000, 0.0000005),
    ("6A", "Australian Dollar", "CME", 100000, 0.00005),
    ("6C", "Canadian Dollar", "CME", 100000, 0.00005),
    ("6S", "Swiss Franc", "CME", 125000, 0.00005),
    ("6N", "New Zealand Dollar", "CME", 100000, 0.00005),
    ("BTC", "Bitcoin", "CME", 5, 5),
    ("MBT", "Micro Bitcoin", "CME", 0.1, 5),
    ("ETH", "Ether", "CME", 50, 0.5),
    ("VX", "VIX", "CFE", 1000, 0.05),
]
_FOREX = [
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "USDCHF",
    "AUDUSD",
    "USDCAD",
    "NZDUSD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "EURCHF",
    "AUDJPY",
    "CADJPY",
    "CHFJPY",
    "EURAUD",
    "EURCAD",
    "GBPAUD",
    "GBPCAD",
    "AUDNZD",
    "NZDJPY",
    "XAUUSD",
    "XAGUSD",
]

INSTRUMENTS: list[dict[str, Any]] = [
    {
        "symbol": s,
        "name": n,
        "asset_type": "futures",
        "exchange": e,
        "multiplier": m,
        "tick_size": t,
        "tick_value": round(m * t, 6),
    }
    for s, n, e, m, t in _FUTURES
] + [
    {
        "symbol": s,
        "name": f"{s[:3]}/{s[3:]}",
        "asset_type": "forex",
        "exchange": "OTC",
        "multiplier": 100000,
        "tick_size": 0.01 if "JPY" in s or s.startswith("XA") else 0.0001,
        "tick_value": 10.0,
    }
    for s in _FOREX
]

BROKERS: list[dict[str, Any]] = [
    {
        "broker_key": key,
        "name": name,
        "supports_api": api,
        "supports_autosync": auto,
        "supports_csv": True,
        "supports_manual": True,
        "logo": f"{key}.svg",
    }
    for key, name, api, auto in [
        ("tradovate", "Tradovate", True, True),
        ("ninjatrader", "NinjaTrader", True, True),
        ("rithmic", "Rithmic", True, True),
        ("topstepx", "TopstepX", True, True),
        ("projectx", "ProjectX", True, True),
        ("interactive_brokers", "Interactive Brokers", True, False),
        ("tradestation", "TradeStation", True, False),
        ("metatrader5", "MetaTrader 5", False, False),
        ("ctrader", "cTrader", True, False),
        ("thinkorswim", "thinkorswim", False, False),
    ]
]

PRESETS: list[dict[str, Any]] = []
_preset_id = 0
for _firm, _name, _market, _sizes in [
    ("topstep", "Topstep", "futures", [50000, 100000, 150000]),
    ("apex", "Apex Trader Funding", "futures", [25000, 50000, 100000, 300000]),
    ("ftmo", "FTMO", "forex", [10000, 25000, 50000, 100000, 200000]),
    ("myfundedfutures", "MyFundedFutures", "futures", [50000, 100000]),
    ("fundednext", "FundedNext", "forex", [15000, 25000, 50000]),
]:
    for _size in _sizes:
        for _phase in ("evaluation", "funded"):
            _preset_id += 1
            PRESETS.append(
                {
                    "preset_id": _preset_id,
                    "firm_key": _firm,
                    "firm_name": _name,
                    "market_type": _market,
                    "phase": _phase,
                    "account_size": _size,
                    "profit_target": round(_size * 0.06, 2) if _phase == "evaluation" else None,
                    "max_daily_loss": round(_size * 0.02, 2),
                    "max_drawdown": round(_size * 0.04, 2),
                    "drawdown_type": "trailing" if _market == "futures" else "static",
                    "min_trading_days": 5 if _phase == "evaluation" else 0,
                    "payout_split_pct": 90 if _phase == "funded" else None,
                    "consistency_rule_pct": 30 if _firm in {"topstep", "apex"} else None,
                }
            )

SCOPE_CATALOG: list[tuple[str, str | None, str]] = [
    ("trades", "write", "Trades, executions, tags and confirmations on a trade"),
    ("accounts", "write", "Trading accounts"),
    ("balance", "write", "Balance status, events, payouts and snapshots"),
    ("goals", "write", "Goals and period progress"),
    ("protocols", "write", "Protocol templates and responses"),
    ("tags", "write", "Tags, tag categories, and the tag set on a trade"),
    ("strategies", "write", "Strategies, setups and confirmation templates"),
    ("screenshots", "write", "Screenshot files"),
    ("copy_groups", "write", "Copy trading groups and members"),
    ("autosync", "write", "Auto-sync status, history and manual sync"),
    ("settings", "write", "Reserved for settings endpoints"),
    ("catalog", None, "Brokers, instruments, prop firm presets, emotions (every key)"),
]

SCOPES: list[str] = [f"read:{r}" for r, _, _ in SCOPE_CATALOG] + [
    f"write:{r}" for r, w, _ in SCOPE_CATALOG if w
]
