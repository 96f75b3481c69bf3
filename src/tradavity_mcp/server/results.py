"""Structured tool results: small, exact, and each with a one-line text rendering.

Every field here is paid for in every conversation (output schemas are part of
tools/list), so results carry ids, names and numbers, not raw API payloads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .when import LocalClock

__all__ = [
    "ArchiveResult",
    "JournalResult",
    "Outcome",
    "ProtocolResult",
    "ScreenshotResult",
    "SyncRunResult",
    "TagResult",
    "TradeResult",
    "TradeSummary",
    "WriteResult",
]

#: done: written now. replayed: this exact call ran before; its recorded result is
#: returned and nothing was sent. suspected_duplicate: the host sent the same call
#: twice; the first result is returned. pending: Tradavity did not confirm yet; the
#: write is kept and finished automatically with the same idempotency key.
Outcome = Literal["done", "replayed", "suspected_duplicate", "pending", "partial"]


class _Result(BaseModel):
    # Not extra="forbid": that would add `additionalProperties: false` to every output
    # schema, paid in every conversation, for no use to the model.
    model_config = ConfigDict(extra="ignore", defer_build=True)


class WriteResult(_Result):
    """What every journaling result says first: what happened, and what to do next."""

    outcome: Outcome
    note: str | None = None


class TradeSummary(_Result):
    trade_number: int
    symbol: str | None = None
    direction: str | None = None
    net_pnl: float | None = None
    trade_date: str | None = None
    account: str | None = None
    grade: str | None = None

    def line(self, clock: LocalClock) -> str:
        """`#12 MNQ long +48.50 on 2026-12-07 09:31 EST (Apex 50K) grade A`."""
        pnl = f"{self.net_pnl:+,.2f}" if self.net_pnl is not None else "?"
        parts = [f"#{self.trade_number} {self.symbol or '?'} {self.direction or ''} {pnl}".strip()]
        if self.trade_date:
            parts.append(f"on {clock.text(self.trade_date)}")
        if self.account:
            parts.append(f"({self.account})")
        if self.grade:
            parts.append(f"grade {self.grade}")
        return " ".join(parts)


# The trade's essentials, flat: a nested model would cost a `$defs` block per tool.
class TradeResult(WriteResult):
    trade_number: int | None = None
    symbol: str | None = None
    direction: str | None = None
    net_pnl: float | None = None
    #: UTC, as Tradavity keeps it; `trade_date_local` is the user's time.
    trade_date: str | None = None
    trade_date_local: str | None = None
    account: str | None = None
    grade: str | None = None


class TagResult(WriteResult):
    trade_number: int
    tags: list[str] = []
    created: list[str] = []


class ScreenshotResult(WriteResult):
    trade_number: int
    screenshot_id: int | None = None
    file_type: str | None = None
    label: str | None = None


class ProtocolResult(WriteResult):
    protocol: str
    response_id: int | None = None
    status: str | None = None
    trade_number: int | None = None
    answered: int = 0
    #: Required items still without an answer (the response was kept as a draft), each
    #: "Label: what it takes".
    to_answer: list[str] | None = None


class SyncRunResult(_Result):
    outcome: Literal["done", "replayed", "cooling_down", "pending"]
    run_id: str | None = None
    connection_id: int
    broker: str | None = None
    imported: int = 0
    skipped: int = 0
    total_fetched: int = 0
    total_trades: int | None = None
    total_pnl: float | None = None
    errors: list[str] = []
    retry_after_seconds: float | None = None
    message: str | None = None


class ArchiveResult(WriteResult):
    trade_number: int
    archived: int = 0


class JournalResult(TradeResult):
    #: step -> "done" | "done (earlier)" | "failed: <why>" | "draft: <what is missing>"
    steps: dict[str, str] = {}
    #: The checklist's required items still without an answer, as in ProtocolResult.
    to_answer: list[str] | None = None
