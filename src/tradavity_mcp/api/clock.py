"""Time, sleeping and jitter behind one seam, so retries and pacing test instantly."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

__all__ = ["Clock", "FakeClock", "Now", "Sleep", "SystemClock"]

#: A reading of a clock, in seconds: `time.time` for the wall, `time.monotonic` for
#: intervals, a sandbox's `ManualClock` in tests. Everything that reads time takes one.
Now = Callable[[], float]
#: How waiting is done: `anyio.sleep`, or a test's sleep that moves its clock.
Sleep = Callable[[float], Awaitable[None]]


class Clock(Protocol):
    """What the client needs of time: a wall clock, a sleep and a source of jitter."""

    def now(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def jitter(self) -> float:
        """A number in [0, 1)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def jitter(self) -> float:
        return random.random()


class FakeClock:
    """A clock for tests: sleeping advances time at once and is recorded."""

    def __init__(self, start: float = 1_800_000_000.0, jitter: float = 0.5) -> None:
        self._now = start
        self._jitter = jitter
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += seconds
        await anyio.lowlevel.checkpoint()

    def jitter(self) -> float:
        return self._jitter
