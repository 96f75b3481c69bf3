"""Clocks the sandbox reads for every time-dependent rule (rate windows, cooldowns,
the 24 h idempotency window, scheduled syncs, "tomorrow", seed dates)."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """Time stands still until a test moves it."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, t: float) -> None:
        self._now = t


class ScaledClock:
    """Real time, `factor` times faster (for throughput benchmarks)."""

    def __init__(self, factor: float, start: float | None = None) -> None:
        self._factor = factor
        self._origin = time.monotonic()
        self._start = time.time() if start is None else start

    def now(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self._factor
