"""`tradavity-mcp demo`: the whole product in one command, on the sandbox.

It starts the sandbox on loopback, launches the server as a real stdio subprocess,
connects a real MCP client, journals a voice-note trade end to end (tags, chart,
checklist), triggers a broker sync, and prints the trade, this week's stats and the
month's calendar.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent
from PIL import Image, ImageDraw

from .sandbox import DEMO_KEY, SandboxConfig, create_app, serve_in_thread

__all__ = ["VOICE_NOTE", "run_demo"]

VOICE_NOTE = (
    "Long 2 MNQ at 9:31 on the open, out at plus 48 net. Felt rushed. "
    "Tag it breakout and FOMO, here's the chart, checklist was all yes."
)


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.perf_counter()

    def step(self, text: str) -> None:
        self.out.write(f"  - {text} ... ")
        self.out.flush()
        self.started = time.perf_counter()

    def done(self, detail: str = "") -> None:
        ms = (time.perf_counter() - self.started) * 1000
        self.out.write(f"ok ({ms:.0f} ms){'  ' + detail if detail else ''}\n")
        self.out.flush()


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


def _answer(item: dict[str, Any]) -> Any:
    """What a trader who says "all yes" means for each kind of checklist item."""
    kind = item.get("type")
    if kind in {"checkbox", "yes_no_na"}:
        return "yes"
    if kind == "rating":
        return 4
    if kind == "number":
        return 1
    if kind == "select":
        return (item.get("options") or ["n/a"])[0]
    return "Followed the plan."


async def _run(out: TextIO) -> int:
    progress = _Progress(out)
    out.write("tradavity-mcp demo (sandbox data, nothing leaves this machine)\n\n")
    out.write(f'Voice note: "{VOICE_NOTE}"\n\n')
    with tempfile.TemporaryDirectory(prefix="tradavity-demo-") as tmp:
        work = Path(tmp)
        charts = work / "charts"
        charts.mkdir()
        chart = charts / "mnq-open.png"
        chart.write_bytes(_chart_png())

        progress.step("starting the sandbox on loopback")
        app = create_app(SandboxConfig(db=str(work / "sandbox.sqlite3")))
        with serve_in_thread(app) as base_url:
            progress.done(base_url)
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "tradavity_mcp", "--allowed-dir", str(charts)],
                env={
                    "TRADAVITY_API_KEY": DEMO_KEY,
                    "TRADAVITY_BASE_URL": base_url,
                    "TRADAVITY_STATE_DIR": str(work / "state"),
                },
            )
            progress.step("launching the MCP server (stdio) and connecting a client")
            async with Client(params) as client:
                tools = await client.list_tools()
                progress.done(f"{len(tools.tools)} tools")

                progress.step("looking up accounts")
                accounts = _data(await client.call_tool("lookup", {"name": "accounts"}))
                account = str(accounts["items"][0]["name"])
                progress.done(f"journaling on '{account}'")

                progress.step("reading the pre-trade checklist")
                checklist = _data(
                    await client.call_tool("lookup", {"name": "protocols", "query": "pre_trade"})
                )
                answers = {str(i["label"]): _answer(i) for i in checklist.get("items", [])}
                progress.done(f"'{checklist.get('name')}', {len(answers)} items")

                progress.step("journaling the trade (create, tags, chart, checklist)")
                today = datetime.now().strftime("%Y-%m-%d")
                journaled = _data(
                    await client.call_tool(
                        "journal_trade",
                        {
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
                        },
                    )
                )
                number = journaled.get("trade_number")
                progress.done(f"trade #{number}: {journaled.get('steps')}")

                progress.step("triggering a broker sync")
                synced = await client.call_tool("trigger_sync", {"wait": True})
                _data(synced)
                progress.done(_text(synced).splitlines()[0])

                progress.step("reading back")
                trade = _data(await client.call_tool("get_trade", {"trade_number": number}))
                stats = _data(await client.call_tool("get_stats", {"range": "7d"}))
                calendar = _data(await client.call_tool("get_calendar", {"range": "mtd"}))
                progress.done()

    out.write("\nThe journaled trade\n")
    for key in (
        "trade_number",
        "trade_date",
        "symbol",
        "direction",
        "quantity",
        "net_pnl",
        "emotional_state",
        "tags",
    ):
        out.write(f"  {key:16} {trade.get(key)}\n")
    out.write(f"  {'screenshots':16} {len(trade.get('screenshots', []))}\n")
    out.write(f"  {'checklists':16} {len(trade.get('protocol_responses', []))}\n")
    out.write("\nThis week (7 days)\n")
    totals = stats.get("totals", {})
    decisions = stats.get("decisions", {})
    out.write(f"  net P&L          {totals.get('total_net_pnl')}\n")
    out.write(f"  trades           {totals.get('trade_rows')}\n")
    out.write(f"  win rate         {decisions.get('win_rate_pct')} %\n")
    out.write("\nThis month, day by day\n")
    for day in calendar.get("days", []):
        pnl = float(day.get("net_pnl", 0))
        bar = ("#" if pnl >= 0 else "-") * min(40, max(1, round(abs(pnl) / 50)))
        out.write(f"  {day.get('date')}  {pnl:>10,.2f}  {bar}\n")
    summary = calendar.get("summary", {})
    out.write(f"  total            {summary.get('total_net_pnl')}\n\n")
    out.write(json.dumps({"journaled": journaled.get("outcome"), "trade": number}) + "\n")
    return 0


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
