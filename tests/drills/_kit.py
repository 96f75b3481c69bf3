"""Shared pieces of the drills: one full journaling run, and checking it through the API."""

from __future__ import annotations

import base64
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from mcp import Client
from mcp.types import CallToolResult, RequestParamsMeta
from PIL import Image

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.server.writes.call import CALL_ID_META_KEY

from ..kit import text_of


def png(seed: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (seed % 256, 80, 160)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@dataclass
class Plan:
    """What a journaling run needs, discovered through the tools (names, not ids)."""

    account: str
    tags: list[str]
    answers: dict[str, Any]
    protocol_id: int

    @classmethod
    async def discover(cls, client: Client) -> Plan:
        def data(result: CallToolResult) -> dict[str, Any]:
            assert not result.is_error, text_of(result)
            return dict(result.structured_content or {})

        accounts = data(await client.call_tool("lookup", {"name": "accounts"}))["items"]
        tags = [
            t["name"] for t in data(await client.call_tool("lookup", {"name": "tags"}))["items"]
        ]
        checklist = data(
            await client.call_tool("lookup", {"name": "protocols", "query": "pre_trade"})
        )
        answers: dict[str, Any] = {"*": "yes"}
        for item in checklist["items"]:
            kind = item["type"]
            if kind == "select":
                answers[item["label"]] = item["options"][0]
            elif kind in {"rating", "number"}:
                answers[item["label"]] = 3
            elif kind == "text":
                answers[item["label"]] = "per plan"
        return cls(accounts[0]["name"], tags[:2], answers, int(checklist["id"]))

    def arguments(self, i: int, symbol: str = "M2K", *, now: bool = False) -> dict[str, Any]:
        """Run i's journal_trade; `now` journals it at "now" (resolved once, on the first
        attempt, whatever happens after)."""
        return {
            "trade": {
                "symbol": symbol,
                "direction": "long" if i % 2 else "short",
                "net_pnl": 1000 + i + 0.25,
                "trade_date": "now" if now else "2026-11-18T10:00",
                "account": self.account,
            },
            "tags": [t.lower() for t in self.tags],
            "screenshot": {"data": png(i), "filename": f"run-{i}.png", "label": f"run {i}"},
            "checklist": {"protocol": "pre_trade", "answers": self.answers},
        }


def call_meta(call_id: str | None) -> RequestParamsMeta | None:
    """Our call id in `_meta`; None sends no id at all (as most hosts do)."""
    return cast(RequestParamsMeta, {CALL_ID_META_KEY: call_id}) if call_id else None


async def journal_until_known(
    call: Callable[..., Awaitable[CallToolResult]],
    arguments: dict[str, Any],
    call_id: str | None,
    *,
    max_tries: int = 50,
) -> dict[str, Any]:
    """Call journal_trade, and call again while it is pending: with the same id, or
    (`call_id` None) with no id, as a host re-sending the model's call would."""
    for _ in range(max_tries):
        result = await call("journal_trade", arguments, meta=call_meta(call_id))
        assert not result.is_error, text_of(result)
        data = dict(result.structured_content or {})
        if data["outcome"] != "pending":
            return data
    raise AssertionError(f"{call_id} still pending after {max_tries} calls")


async def verify(api: TradavityClient, plan: Plan, runs: int, symbol: str = "M2K") -> list[int]:
    """Exactly `runs` trades of this drill, each with its tags, one screenshot, one response."""
    rows = [r async for r in api.iter_trades(symbol=symbol, limit=200)]
    pnls = sorted(float(r.net_pnl or 0) for r in rows)
    assert pnls == [1000 + i + 0.25 for i in range(runs)], f"{len(rows)} trades for {runs} runs"
    for row in rows:
        trade = await api.get_trade(row.trade_number)
        assert sorted(str(t.get("name")) for t in trade.tags) == sorted(plan.tags)
        assert len(await api.list_screenshots(row.trade_number)) == 1
        responses = await api.list_protocol_responses(
            plan.protocol_id, trade_number=row.trade_number
        )
        assert len(responses) == 1
    return [r.trade_number for r in rows]
