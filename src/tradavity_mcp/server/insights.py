"""What the journal means: breakdowns the API does not give, account health, goals.

Breakdowns (`get_stats` kinds `by-tag`, `by-weekday`, `by-hour`, `by-grade`, `by-setup`,
`by-checklist`) are computed here from the trade list of the range, grouped into
decisions as the API's stats group them (a copy counted once, its P&L summed with its
source's), and classified with the breakeven window `/stats/summary` echoes. Tags come
from the list's `tag` filter (one listing per tag), checklist states from the pre-trade
protocols' responses. What was read is kept per workspace and range (`Journal`), so a
second breakdown of the same range costs one request (the summary, which also tells
whether the journal changed); a write of ours drops it (`forget`), and it is read
again after `FRESH_SECONDS` whatever happens.

Every row, here and in the API's own kinds (`enrich`), carries `n` (decisions),
`net_pnl`, `win_rate` (percent of decided: wins over wins and losses), `win_rate_ci`
(the 95 % Wilson interval, percent), `expectancy` and `profit_factor`; a row of fewer
than `FEW` decisions is marked `few` and said to be too few to tell.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ..api.errors import NotFound
from .errors import UserError
from .when import LocalClock
from .workspace import Workspace

__all__ = [
    "BREAKDOWNS",
    "FEW",
    "FRESH_SECONDS",
    "account_health",
    "breakdown",
    "enrich",
    "forget",
    "goals",
    "wilson",
]

BREAKDOWNS = ("by-tag", "by-weekday", "by-hour", "by-grade", "by-setup", "by-checklist")
#: The scope a breakdown needs beyond `read:trades`.
BREAKDOWN_SCOPES = {"by-checklist": "read:protocols"}
#: Argument values hidden from tools/list for a key without their scope (`scope`).
VALUE_SCOPES = {"get_stats": {"kind": BREAKDOWN_SCOPES}}
#: Fewer decisions than this in a row: marked `few`, "too few to tell".
FEW = 20
#: Seconds a range read for a breakdown is used again (if the summary still matches).
FRESH_SECONDS = 600.0
#: Ranges kept across all workspaces (the oldest is dropped).
KEPT = 32
#: The z of a two-sided 95 % interval.
Z95 = 1.959963984540054

GRADES = ("A+", "A", "B", "C", "F")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NONE_LABEL = {
    "by-tag": "(no tag)",
    "by-grade": "(no grade)",
    "by-setup": "(no setup)",
}


def wilson(wins: int, decided: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of `wins` out of `decided`, as fractions; None for 0."""
    if decided <= 0:
        return None
    p = wins / decided
    denom = 1 + z * z / decided
    centre = (p + z * z / (2 * decided)) / denom
    half = z * math.sqrt(p * (1 - p) / decided + z * z / (4 * decided * decided)) / denom
    low = 0.0 if wins == 0 else max(0.0, centre - half)
    high = 1.0 if wins == decided else min(1.0, centre + half)
    return low, high


def _pct(x: float) -> float:
    return round(100 * x, 1)


def measures(n: int, wins: int, losses: int, net: float, won: float, lost: float) -> dict[str, Any]:
    """The figures every row carries. `won`/`lost`: the decisions' gross wins and losses
    (`lost` positive); `net`: real money (every row, copies included)."""
    decided = wins + losses
    ci = wilson(wins, decided)
    out: dict[str, Any] = {
        "n": n,
        "net_pnl": round(net, 2),
        "wins": wins,
        "losses": losses,
        "breakevens": n - decided,
        "win_rate": _pct(wins / decided) if decided else None,
        "win_rate_ci": [_pct(ci[0]), _pct(ci[1])] if ci else None,
        "expectancy": round(net / n, 2) if n else None,
        "profit_factor": round(won / lost, 2) if lost else None,
    }
    if n < FEW:
        out["few"] = True
    return out


# --- the API's own kinds -------------------------------------------------------------------


def _enrich_block(block: dict[str, Any], net: Any = None) -> dict[str, Any]:
    """An API decision block (count, wins, losses, ...) with our figures added."""
    n = int(block.get("count") or 0)
    wins, losses = int(block.get("wins") or 0), int(block.get("losses") or 0)
    decided = wins + losses
    out = dict(block)
    out["n"] = n
    ci = wilson(wins, decided)
    out["win_rate"] = _pct(wins / decided) if decided else None
    out["win_rate_ci"] = [_pct(ci[0]), _pct(ci[1])] if ci else None
    if net is not None and n:
        out["expectancy"] = round(float(net) / n, 2)
    if n < FEW:
        out["few"] = True
    return {k: v for k, v in out.items() if v is not None}


def enrich(data: dict[str, Any], kind: str) -> dict[str, Any]:
    """The API's summary / by-symbol / by-strategy with `n`, `win_rate` and
    `win_rate_ci` on the decisions (and each row), and small rows marked `few`."""
    out = dict(data)
    if kind == "summary" and isinstance(out.get("decisions"), dict):
        out["decisions"] = _enrich_block(out["decisions"])
    elif isinstance(out.get("rows"), list):
        out["rows"] = [
            _enrich_block(r) if isinstance(r, dict) and "count" in r else r for r in out["rows"]
        ]
    return out


# --- reading a range once ------------------------------------------------------------------


@dataclass
class Decision:
    """One trading decision: a trade and its copies."""

    numbers: list[int]
    when: datetime
    net_pnl: float
    grade: str | None
    strategy: str | None
    setup: str | None


@dataclass
class Journal:
    """What one range holds, as read for breakdowns."""

    owner: weakref.ref[Workspace]
    summary: dict[str, Any]
    decisions: list[Decision]
    rows: int
    read_at: float
    requests: int
    tags: dict[str, set[int]] | None = None
    checklist: dict[int, str] | None = None
    extra: dict[str, int] = field(default_factory=dict)


_KEPT: OrderedDict[tuple[Any, ...], Journal] = OrderedDict()


def forget(ws: Workspace) -> None:
    """Drop what was read for `ws`'s breakdowns (after a write of ours or a sync)."""
    for key in [k for k, j in _KEPT.items() if j.owner() is ws or j.owner() is None]:
        del _KEPT[key]


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("name") or value.get("account_name")
        return str(found) if found else None
    return str(value) if value not in (None, "") else None


def _decisions(rows: Iterable[Any]) -> list[Decision]:
    """Rows grouped as the API groups decisions. The list does not name a copy's source:
    a copy joins the trade of the same moment, symbol and direction that is not a copy
    (a copy group places them together); a copy alone in the range is its own decision,
    as it is in the API's stats of that range."""
    out: list[Decision] = []
    sources: dict[tuple[Any, ...], Decision] = {}
    copies = []
    for row in rows:
        if row.is_copy:
            copies.append(row)
            continue
        d = _decision(row)
        out.append(d)
        sources.setdefault((row.trade_date, row.symbol, row.direction), d)
    for row in copies:
        source = sources.get((row.trade_date, row.symbol, row.direction))
        if source is None:
            out.append(_decision(row))
        else:
            source.numbers.append(row.trade_number)
            source.net_pnl += float(row.net_pnl or 0)
    return out


def _decision(row: Any) -> Decision:
    try:
        when = datetime.fromisoformat(str(row.trade_date).replace("Z", "+00:00"))
    except ValueError:
        when = datetime.fromtimestamp(0, UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return Decision(
        [row.trade_number],
        when,
        float(row.net_pnl or 0),
        row.grade,
        _name(row.strategy),
        _name(row.setup),
    )


class _Counted:
    """Counts the API requests a breakdown makes (the client's own counter)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.start = _sent(ws)

    @property
    def used(self) -> int:
        return _sent(self.ws) - self.start


def _sent(ws: Workspace) -> int:
    return int(getattr(ws.api, "requests_sent", 0))


async def _journal(
    ws: Workspace, span: dict[str, Any], account_id: int | None, counted: _Counted
) -> tuple[Journal, bool]:
    """The range's decisions: kept ones when the summary still matches them."""
    params = {**span, **({"account_id": account_id} if account_id is not None else {})}
    summary = await ws.api.stats("summary", **params)
    key = (id(ws), ws.principal, tuple(sorted(params.items())))
    kept = _KEPT.get(key)
    now = ws.clock()
    if (
        kept is not None
        and kept.owner() is ws
        and now - kept.read_at < FRESH_SECONDS
        and _same(kept.summary, summary)
    ):
        _KEPT.move_to_end(key)
        return kept, True
    listing = {k: v for k, v in params.items() if k in ("from", "to", "account_id")}
    rows = [r async for r in ws.api.iter_trades(**listing, limit=200)]
    journal = Journal(weakref.ref(ws), summary, _decisions(rows), len(rows), now, counted.used)
    _KEPT[key] = journal
    while len(_KEPT) > KEPT:
        _KEPT.popitem(last=False)
    return journal, False


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two summaries of a range show the same journal."""
    return a.get("totals") == b.get("totals") and a.get("decisions") == b.get("decisions")


# --- breakdowns ----------------------------------------------------------------------------


async def breakdown(
    ws: Workspace,
    kind: str,
    *,
    days: tuple[date | None, date | None],
    account_id: int | None,
    clock: LocalClock,
) -> dict[str, Any]:
    """One breakdown of the range (`days`: the user's first and last day, None: open)."""
    if kind not in BREAKDOWNS:
        raise UserError(f"kind must be one of {', '.join(BREAKDOWNS)}; got {kind!r}")
    need = BREAKDOWN_SCOPES.get(kind)
    if need and ws.scopes is not None and need not in ws.scopes:
        raise UserError(f"{kind} needs the {need} scope, which this API key does not have")
    counted = _Counted(ws)
    span = {k: v.isoformat() for k, v in (("from", days[0]), ("to", days[1])) if v is not None}
    if not span:
        span = {"range": "all"}
    journal, kept = await _journal(ws, span, account_id, counted)
    window = _window(journal.summary)
    if kind == "by-tag":
        labels = await _tag_labels(ws, journal, span, account_id)
    elif kind == "by-checklist":
        labels = await _checklist_labels(ws, journal)
    else:
        labels = _LABELS[kind](clock)
    groups: dict[str, list[Decision]] = {}
    for d in journal.decisions:
        for label in labels(d):
            groups.setdefault(label, []).append(d)
    rows = [{_KEY[kind]: label, **_measure(ds, window)} for label, ds in groups.items()]
    rows.sort(key=_ORDER[kind])
    out: dict[str, Any] = {
        "kind": kind,
        "range": {**span},
        "timezone": clock.name,
        "rows": rows,
        "total": _measure(journal.decisions, window),
        "trade_rows": journal.rows,
        "breakeven_offset": journal.summary.get("breakeven_offset"),
        "as_of": datetime.fromtimestamp(journal.read_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requests": counted.used,
    }
    if kept:
        out["from_cache"] = True
    notes = [_NOTES.get(kind, "")]
    few = [r for r in rows if r.get("few")]
    if few:
        notes.append(f"{len(few)} row(s) with fewer than {FEW} decisions: too few to tell an edge.")
    out["note"] = " ".join(n for n in notes if n)
    return out


def _window(summary: dict[str, Any]) -> tuple[float, float]:
    offset = summary.get("breakeven_offset")
    if isinstance(offset, dict):
        try:
            return float(offset.get("low") or 0), float(offset.get("high") or 0)
        except (TypeError, ValueError):
            pass
    return 0.0, 0.0


def _measure(ds: list[Decision], window: tuple[float, float]) -> dict[str, Any]:
    low, high = window
    wins = [d.net_pnl for d in ds if not low <= d.net_pnl <= high and d.net_pnl > 0]
    losses = [d.net_pnl for d in ds if not low <= d.net_pnl <= high and d.net_pnl < 0]
    net = sum(d.net_pnl for d in ds)
    return measures(len(ds), len(wins), len(losses), net, sum(wins), -sum(losses))


def _weekday(clock: LocalClock) -> Callable[[Decision], list[str]]:
    return lambda d: [WEEKDAYS[d.when.astimezone(clock.zone).weekday()]]


def _hour(clock: LocalClock) -> Callable[[Decision], list[str]]:
    return lambda d: [f"{d.when.astimezone(clock.zone).hour:02d}:00"]


def _grade(clock: LocalClock) -> Callable[[Decision], list[str]]:
    return lambda d: [d.grade or NONE_LABEL["by-grade"]]


def _setup(clock: LocalClock) -> Callable[[Decision], list[str]]:
    def label(d: Decision) -> list[str]:
        if not d.setup:
            return [NONE_LABEL["by-setup"]]
        return [f"{d.setup} ({d.strategy})" if d.strategy else d.setup]

    return label


_LABELS: dict[str, Callable[[LocalClock], Callable[[Decision], list[str]]]] = {
    "by-weekday": _weekday,
    "by-hour": _hour,
    "by-grade": _grade,
    "by-setup": _setup,
}

_KEY = {
    "by-tag": "tag",
    "by-weekday": "weekday",
    "by-hour": "hour",
    "by-grade": "grade",
    "by-setup": "setup",
    "by-checklist": "checklist",
}

_CHECKLIST_ORDER = ("completed", "draft", "missing")

_ORDER: dict[str, Callable[[dict[str, Any]], Any]] = {
    "by-tag": lambda r: (r["tag"] == NONE_LABEL["by-tag"], -r["n"], r["tag"]),
    "by-weekday": lambda r: WEEKDAYS.index(r["weekday"]),
    "by-hour": lambda r: r["hour"],
    "by-grade": lambda r: GRADES.index(r["grade"]) if r["grade"] in GRADES else len(GRADES),
    "by-setup": lambda r: (r["setup"] == NONE_LABEL["by-setup"], -r["n"], r["setup"]),
    "by-checklist": lambda r: _CHECKLIST_ORDER.index(r["checklist"]),
}

_NOTES = {
    "by-tag": "A decision with two tags counts in both rows, so the rows do not add up to "
    "the total; a copy counts under its source's tags.",
    "by-hour": "Hours are the user's local hours (the hour the trade opened).",
    "by-weekday": "Weekdays are the user's local days.",
    "by-checklist": "completed: a pre-trade checklist was completed for the trade; draft: "
    "started, not completed; missing: none recorded.",
}


async def _tag_labels(
    ws: Workspace, journal: Journal, span: dict[str, Any], account_id: int | None
) -> Callable[[Decision], list[str]]:
    if journal.tags is None:
        listing = {k: v for k, v in span.items() if k in ("from", "to")}
        if account_id is not None:
            listing["account_id"] = account_id
        tags: dict[str, set[int]] = {}
        for tag in await ws.ref.tags():
            numbers = {
                r.trade_number async for r in ws.api.iter_trades(tag=tag.name, **listing, limit=200)
            }
            if numbers:
                tags[tag.name] = numbers
        journal.tags = tags
    tagged = journal.tags

    def label(d: Decision) -> list[str]:
        names = [name for name, numbers in tagged.items() if numbers.intersection(d.numbers)]
        return names or [NONE_LABEL["by-tag"]]

    return label


async def _checklist_labels(ws: Workspace, journal: Journal) -> Callable[[Decision], list[str]]:
    if journal.checklist is None:
        states: dict[int, str] = {}
        for proto in await ws.ref.protocols():
            if proto.type != "pre_trade":
                continue
            for r in await ws.api.list_protocol_responses(proto.protocol_id, status="all"):
                number = r.get("trade_number")
                if not isinstance(number, int):
                    continue
                status = "completed" if r.get("status") == "completed" else "draft"
                if states.get(number) != "completed":
                    states[number] = status
        journal.checklist = states
    states = journal.checklist

    def label(d: Decision) -> list[str]:
        found = {states[n] for n in d.numbers if n in states}
        if "completed" in found:
            return ["completed"]
        return ["draft"] if found else ["missing"]

    return label


def breakdown_text(data: dict[str, Any]) -> str:
    """One line a row, in words a trader reads."""
    kind = str(data.get("kind", ""))
    key = _KEY.get(kind, "label")
    span = data.get("range") or {}
    first, last = span.get("from"), span.get("to")
    days = f"{first} to {last}" if first or last else "all time"
    lines = [f"Stats {kind} ({days}, {data.get('timezone')}); decisions count copies once:"]
    for row in [*data.get("rows", []), {key: "All", **(data.get("total") or {})}]:
        lines.append(f"{row.get(key)}: {row_text(row)}")
    if data.get("note"):
        lines.append(f"({data['note']})")
    fresh = "kept from an earlier read" if data.get("from_cache") else "read"
    lines.append(f"(Data {fresh} at {data.get('as_of')}; {data.get('requests')} API requests.)")
    return "\n".join(lines)


def row_text(row: dict[str, Any]) -> str:
    n = int(row.get("n") or 0)
    decisions = "1 decision" if n == 1 else f"{n} decisions"
    parts = [decisions, f"net {float(row.get('net_pnl') or 0):+,.2f}"]
    if row.get("win_rate") is not None and row.get("win_rate_ci"):
        low, high = row["win_rate_ci"]
        parts.append(f"win rate {row['win_rate']:.0f}% (95% CI {low:.0f}-{high:.0f}%)")
    if row.get("expectancy") is not None:
        parts.append(f"expectancy {row['expectancy']:+,.2f}")
    if row.get("profit_factor") is not None:
        parts.append(f"profit factor {row['profit_factor']:.2f}")
    text = ", ".join(parts)
    if row.get("few"):
        text += f" - {decisions}: too few to tell"
    return text


# --- account health ------------------------------------------------------------------------


def _money(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _num(block: dict[str, Any], name: str) -> float | None:
    value = block.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


async def account_health(ws: Workspace, account: str | int, clock: LocalClock) -> dict[str, Any]:
    """An account's room to its limits, in figures and one sentence on top."""
    acct = await ws.ref.account(account)
    name = acct.account_name
    try:
        block = await ws.api.balance(acct.id)
    except NotFound:
        return {
            "account": name,
            "summary": f"{name} has no balance profile in Tradavity (no drawdown or "
            "daily-loss limits are set for it), so there is no room to report.",
        }
    today = clock.today.isoformat()
    rows = [r async for r in ws.api.iter_trades(account_id=acct.id, **{"from": today}, to=today)]
    today_net = round(sum(float(r.net_pnl or 0) for r in rows), 2)
    out: dict[str, Any] = {"account": name, "balance": block}
    drawdown, cap = _num(block, "drawdown"), _num(block, "max_drawdown")
    daily = _num(block, "max_daily_loss")
    start, current = _num(block, "starting_balance"), _num(block, "current_balance")
    target = _num(block, "profit_target")
    words: list[str] = []
    if drawdown is not None and cap is not None:
        room = round(cap - drawdown, 2)
        out["drawdown_room"] = room
        words.append(f"{_money(room)} of room before the {_money(cap)} drawdown limit")
    today_block: dict[str, Any] = {
        "date": today,
        "net_pnl": today_net,
        "trade_rows": len(rows),
    }
    if daily is not None:
        loss = max(0.0, -today_net)
        today_block["daily_room"] = round(daily - loss, 2)
        words.append(
            f"today {_money(today_net)} of a {_money(daily)} daily limit "
            f"({_money(daily - loss)} left)"
        )
    else:
        words.append(f"today {_money(today_net)}")
    out["today"] = today_block
    if start is not None and current is not None and target:
        made = round(current - start, 2)
        out["profit_target_progress"] = {
            "made": made,
            "target": target,
            "percent": round(100 * made / target, 1),
        }
    out["summary"] = f"{name}: " + "; ".join(words) + "."
    if block.get("status"):
        out["status"] = block["status"]
    out["rule_violations"] = await ws.api.balance_events(
        acct.id, limit=3, event_type="rule_violation"
    )
    out["recent_events"] = await ws.api.balance_events(acct.id, limit=5)
    out["payouts"] = await ws.api.payouts(acct.id, limit=3)
    return out


# --- goals ---------------------------------------------------------------------------------


async def goals(ws: Workspace, status: str = "active", periods: int = 4) -> dict[str, Any]:
    """Goals with this period's target, actual and achieved, and the periods before."""
    allowed = ("active", "paused", "archived", "all")
    if status not in allowed:
        raise UserError(f"status must be one of {', '.join(allowed)}; got {status!r}")
    accounts = {a.id: a.account_name for a in await ws.ref.all_accounts()}
    out = []
    for g in await ws.api.goals(status=status):
        gid = g.get("goal_id") or g.get("id")
        snaps = await ws.api.goal_snapshots(int(gid), limit=periods) if gid is not None else []
        row: dict[str, Any] = {
            "id": gid,
            "name": g.get("goal_name") or g.get("name"),
            "metric": g.get("metric"),
            "direction": g.get("direction"),
            "target": g.get("target_value"),
            "timeframe": g.get("timeframe"),
            "status": g.get("status"),
            "account": accounts.get(g.get("account_id") or -1),
        }
        shaped = [
            {
                "from": s.get("period_start"),
                "to": s.get("period_end"),
                "target": s.get("target"),
                "actual": s.get("actual"),
                "achieved": s.get("achieved"),
            }
            for s in snaps
        ]
        if shaped:
            row["this_period"] = shaped[0]
            row["earlier"] = shaped[1:]
        out.append({k: v for k, v in row.items() if v is not None})
    return {"status": status, "goals": out}


def goals_text(data: dict[str, Any]) -> str:
    lines = []
    for g in data.get("goals", []):
        cmp = "at most" if g.get("direction") == "at_most" else "at least"
        head = f"{g.get('name')} ({g.get('metric')} {cmp} {g.get('target')}, {g.get('timeframe')}"
        head += f", {g['account']})" if g.get("account") else ")"
        p = g.get("this_period")
        if p:
            got = "no figure yet" if p.get("actual") is None else f"{p['actual']:,}"
            state = {True: "achieved", False: "not achieved"}.get(p.get("achieved"), "open")
            head += f": {p.get('from')} to {p.get('to')} actual {got}"
            head += f" of {p.get('target')} ({state})"
        lines.append(head)
    return "\n".join(lines) or f"No {data.get('status')} goals."
