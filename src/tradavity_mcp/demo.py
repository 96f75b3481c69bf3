"""`tradavity-mcp demo`: the whole product in one command, on the sandbox.

It starts the sandbox on loopback, launches the server as a real stdio subprocess,
connects a real MCP client, journals a voice-note trade end to end (tags, chart,
checklist), triggers a broker sync, and prints the trade and the week's figures, then
the same days one by one: plain aligned text, times in the trader's timezone, and figures
that say what they count ("trades" are rows, copies included; "decisions" count a copied
trade once).

The assistant answers only what the trader said. "Checklist was all yes" answers the
checklist's yes/no items; the result names the items that took something else, the
assistant asks, and the trader's reply finishes the same checklist.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent
from PIL import Image, ImageDraw

from .sandbox import DEMO_KEY, SandboxConfig, create_app, serve_in_thread

__all__ = ["TRADER_REPLY", "VOICE_NOTE", "run_demo"]

VOICE_NOTE = (
    "Long 2 MNQ at 9:31 on the open, out at plus 48 net. Felt rushed. "
    "Tag it breakout and FOMO, here's the chart, checklist was all yes."
)
#: The trader's reply when the assistant asks for what "all yes" cannot answer, and how
#: the assistant reads it (the checklist's items by label).
TRADER_REPLY = "Bias was long, conviction 4."
REPLY_ANSWERS: dict[str, Any] = {"Bias": "long", "Conviction": 4}


class _Progress:
    """One aligned line per step: what was done, what came of it, how long it took."""

    WIDTH = 62

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.perf_counter()

    def start(self) -> None:
        self.started = time.perf_counter()

    def done(self, text: str) -> None:
        ms = (time.perf_counter() - self.started) * 1000
        self.out.write(f"  {text:<{self.WIDTH}} {ms:>6.0f} ms\n")
        self.out.flush()
        self.started = time.perf_counter()

    def said(self, text: str) -> None:
        """A line of the conversation (no request, so no time)."""
        self.out.write(f"  {text}\n")
        self.out.flush()
        self.started = time.perf_counter()


def _chart_png() -> bytes:
    """A small candlestick chart, so the screenshot step has a real PNG to upload."""
    image = Image.new("RGB", (480, 270), (17, 24, 39))
    draw = ImageDraw.Draw(image)
    price = 150.0
    for i in range(28):
        o = price
        c = price + (12 if i in (14, 15, 16) else (-1) ** i * 4 + (i % 5) - 2)
        hi, lo = max(o, c) + 5, min(o, c) - 5
        x = 20 + i * 16
        colour = (34, 197, 94) if c >= o else (239, 68, 68)
        draw.line([(x + 4, 270 - hi), (x + 4, 270 - lo)], fill=colour, width=1)
        draw.rectangle([x, 270 - max(o, c), x + 8, 270 - min(o, c)], fill=colour)
        price = c
    draw.text((12, 8), "MNQ 1m  long @ open", fill=(229, 231, 235))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _data(result: CallToolResult) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(_text(result))
    return dict(result.structured_content or {})


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _money(value: Any, *, sign: bool = True) -> str:
    amount = float(value or 0)
    text = f"${abs(amount):,.2f}"
    if not sign:
        return text
    return ("+" if amount >= 0 else "-") + text


def _local(stamp: str, zone: tzinfo) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone)


def _plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


@dataclass
class _Journaled:
    """What the demo read back after journaling, for the page it prints."""

    number: Any
    outcome: Any
    trade: dict[str, Any]
    stats: dict[str, Any]
    calendar: dict[str, Any]
    zone: tzinfo
    zone_name: str


async def _run(out: TextIO) -> int:
    progress = _Progress(out)
    _write_intro(out)
    with tempfile.TemporaryDirectory(prefix="tradavity-demo-") as tmp:
        work = Path(tmp)
        charts = work / "charts"
        charts.mkdir()
        chart = charts / "mnq-open.png"
        chart.write_bytes(_chart_png())

        progress.start()
        app = create_app(SandboxConfig(db=str(work / "sandbox.sqlite3")))
        with serve_in_thread(app) as base_url:
            progress.done(f"started the sandbox API on {base_url.split('//')[1].split('/')[0]}")
            async with Client(_server_params(base_url, charts, work)) as client:
                tools = await client.list_tools()
                progress.done(f"started the server (stdio) and connected: {len(tools.tools)} tools")
                done = await _journal_the_note(client, progress, chart)

    _write_trade(out, done.trade, done.zone, done.zone_name)
    _write_week(out, done.stats, done.calendar)
    again = "each part written once" if done.outcome == "done" else "see above"
    out.write(f"\nJournaled trade #{done.number} ({again}). Try it with your own assistant:\n")
    out.write("  tradavity-mcp config claude-desktop --sandbox\n")
    return 0


def _write_intro(out: TextIO) -> None:
    out.write("tradavity-mcp demo: a trade journaled from a voice note, on the built-in sandbox\n")
    out.write("(a demo journal on this computer: no API key, nothing is sent anywhere)\n\n")
    out.write("The voice note\n")
    for line in textwrap.wrap(f'"{VOICE_NOTE}"', width=76):
        out.write(f"  {line}\n")
    out.write("\nWhat the assistant did, through the MCP server\n")


def _server_params(base_url: str, charts: Path, work: Path) -> StdioServerParameters:
    """This server as a real stdio subprocess, on the sandbox, allowed to read the chart."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "tradavity_mcp", "--allowed-dir", str(charts)],
        env={
            "TRADAVITY_API_KEY": DEMO_KEY,
            "TRADAVITY_BASE_URL": base_url,
            "TRADAVITY_STATE_DIR": str(work / "state"),
        },
    )


async def _journal_the_note(client: Client, progress: _Progress, chart: Path) -> _Journaled:
    """What the assistant does with the voice note, step by step, each step one line."""
    me = json.loads(_resource_text(await client.read_resource("tradavity://catalog/me")))
    trader = str(me.get("user", {}).get("name", "the trader"))
    zone_name = str(me.get("preferences", {}).get("timezone") or "UTC")
    zone = _zone(zone_name)
    accounts = _data(await client.call_tool("lookup", {"name": "accounts"}))
    account = str(accounts["items"][0]["name"])
    progress.done(f"{trader}, {zone_name}; journaling on {account}")

    checklist = _data(await client.call_tool("lookup", {"name": "protocols", "query": "pre_trade"}))
    items = checklist.get("items", [])
    yes_no = [i for i in items if i.get("type") in {"checkbox", "yes_no_na"}]
    progress.done(f"read the checklist: {_plural(len(items), 'item')}, {len(yes_no)} yes/no")

    # "Checklist was all yes": that, and nothing the trader did not say.
    journaled = _data(
        await client.call_tool(
            "journal_trade", _journal_arguments(account, zone, chart, {"*": "yes"})
        )
    )
    number = journaled.get("trade_number")
    steps = journaled.get("steps") or {}
    parts = [
        "checklist draft" if str(state).startswith("draft") else name
        for name, state in steps.items()
        if state == "done" or str(state).startswith("draft")
    ]
    progress.done(f"journaled trade #{number}: {', '.join(parts)}")

    outcome = journaled.get("outcome")
    to_answer = [str(x) for x in journaled.get("to_answer") or []]
    if to_answer:
        for item in to_answer:
            progress.said(f"asked the trader for {item}")
        progress.said(f'the trader: "{TRADER_REPLY}"')
        asked = {item.split(":", 1)[0] for item in to_answer}
        answers = {k: v for k, v in REPLY_ANSWERS.items() if k in asked}
        finished = _data(
            await client.call_tool(
                "record_protocol_response",
                {"protocol": "pre_trade", "trade_number": number, "answers": answers},
            )
        )
        said = ", ".join(f"{k} {v}" for k, v in answers.items())
        done = finished.get("status") == "completed"
        progress.done(f"{'completed' if done else 'still a draft:'} the same checklist: {said}")
        if finished.get("outcome") != "done":
            outcome = finished.get("outcome")

    synced = await client.call_tool("trigger_sync", {"wait": True})
    _data(synced)
    line = _text(synced).splitlines()[0].rstrip(".")
    progress.done(line[:1].lower() + line[1:])

    trade = _data(await client.call_tool("get_trade", {"trade_number": number}))
    stats = _data(await client.call_tool("get_stats", {"range": "7d"}))
    calendar = _data(await client.call_tool("get_calendar", {"range": "7d"}))
    progress.done("read back the trade and the last 7 days")
    return _Journaled(number, outcome, trade, stats, calendar, zone, zone_name)


def _journal_arguments(
    account: str, zone: tzinfo, chart: Path, answers: dict[str, Any]
) -> dict[str, Any]:
    """`journal_trade` as an assistant would call it for the voice note, today at 09:31."""
    today = datetime.now(zone).date().isoformat()
    return {
        "trade": {
            "symbol": "MNQ",
            "direction": "long",
            "quantity": 2,
            "net_pnl": 48,
            "trade_date": f"{today}T09:31",
            "account": account,
            "emotional_state": "rushed",
            "general_notes": VOICE_NOTE,
        },
        "tags": ["Breakout", "FOMO"],
        "create_missing_tags": True,
        "screenshot": {"path": str(chart), "label": "Entry on the open"},
        "checklist": {"protocol": "pre_trade", "answers": answers},
    }


def _resource_text(result: Any) -> str:
    return "".join(str(getattr(c, "text", "")) for c in result.contents)


def _write_trade(out: TextIO, trade: dict[str, Any], zone: tzinfo, zone_name: str) -> None:
    when = _local(str(trade["trade_date"]), zone)
    account = trade.get("account")
    account_name = account.get("name") if isinstance(account, dict) else account
    quantity = float(trade.get("quantity") or 0)
    out.write(f"\nTrade #{trade.get('trade_number')}, {when:%a %d %b %Y, %H:%M} ({zone_name})\n")
    rows = [
        ("trade", f"{trade.get('symbol')} {trade.get('direction')}, {quantity:g} contracts"),
        ("account", str(account_name)),
        ("net P&L", _money(trade.get("net_pnl"))),
        ("felt", str(trade.get("emotional_state") or "-")),
        ("tags", ", ".join(str(t) for t in trade.get("tags") or []) or "-"),
    ]
    shots = trade.get("screenshots") or []
    labels = [str(s.get("label")) for s in shots if isinstance(s, dict) and s.get("label")]
    rows.append(
        ("chart", _plural(len(shots), "screenshot") + (f': "{labels[0]}"' if labels else ""))
    )
    for response in trade.get("protocol_responses") or []:
        pct = float(response.get("completion_pct") or 0)
        rows.append((
            "checklist",
            f"{response.get('protocol_name')}, {response.get('status')}, "
            f"{pct:.0f} % of its items answered",
        ))  # fmt: skip
    for label, value in rows:
        out.write(f"  {label:<12} {value}\n")


def _write_week(out: TextIO, stats: dict[str, Any], calendar: dict[str, Any]) -> None:
    """The week's figures, then the same days one by one: the same net P&L and the same
    decisions, so the two reconcile."""
    totals = stats.get("totals") or {}
    decisions = stats.get("decisions") or {}
    period = stats.get("range") or {}
    first = date.fromisoformat(str(period.get("from")))
    last = date.fromisoformat(str(period.get("to")))
    rows_count = int(totals.get("trade_rows") or 0)
    count = int(decisions.get("count") or 0)
    wins = int(decisions.get("wins") or 0)
    losses = int(decisions.get("losses") or 0)
    even = int(decisions.get("breakevens") or 0)
    copies = rows_count - count
    out.write(f"\nThe last 7 days ({first:%a %d %b} to {last:%a %d %b})\n")
    out.write(
        f"  {'net P&L':<12} {_money(totals.get('total_net_pnl'))} over "
        f"{_plural(rows_count, 'trade')}\n"
    )
    if copies > 0:
        out.write(
            f"  {'':<12} ({_plural(count, 'decision')}, and {_plural(copies, 'copy', 'copies')} "
            "of them on a copy-traded account)\n"
        )
    rate = decisions.get("win_rate_pct")
    out.write(
        f"  {'win rate':<12} {float(rate or 0):.0f} %: {wins} of {wins + losses} decisions "
        f"that won or lost ({_plural(losses, 'loss', 'losses')}"
        f"{f', {even} at breakeven' if even else ''})\n"
    )
    out.write(
        f"  {'expectancy':<12} {_money(decisions.get('expectancy'))} per decision; profit "
        f"factor {float(decisions.get('profit_factor') or 0):.2f} ($ won per $ lost)\n"
    )
    _write_days(out, calendar)


def _write_days(out: TextIO, calendar: dict[str, Any]) -> None:
    """The days of the calendar, one aligned line each, and their sum."""
    days = [d for d in calendar.get("days") or [] if isinstance(d, dict)]
    if not days:
        return
    out.write("\n  Day by day\n")
    biggest = max(abs(float(d.get("net_pnl") or 0)) for d in days) or 1.0
    total = 0.0
    decided = 0
    for day in days:
        pnl = float(day.get("net_pnl") or 0)
        total += pnl
        count = int(day.get("decisions") or 0)
        decided += count
        on = date.fromisoformat(str(day["date"]))
        bar = ("+" if pnl >= 0 else "-") * max(1, round(abs(pnl) / biggest * 24))
        out.write(f"  {on:%a %d}  {_money(pnl):>11}  {_plural(count, 'decision'):<12}  {bar}\n")
    out.write(
        f"  {'7 days':<6}  {_money(total):>11}  {_plural(decided, 'decision')} over "
        f"{_plural(len(days), 'trading day')}\n"
    )


def run_demo(out: TextIO = sys.stdout) -> int:
    try:
        return anyio.run(_run, out)
    except Exception as exc:  # the demo reports one readable line, not a traceback
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            inner = exc.exceptions[0]
            if not isinstance(inner, Exception):
                break
            exc = inner
        out.write(f"\ndemo failed: {exc}\n")
        return 1
