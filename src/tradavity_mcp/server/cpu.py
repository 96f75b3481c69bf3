"""CPU-heavy work off the event loop: the one place the server runs it.

One event loop serves every user of a hosted server, `/healthz` included: a computation
that holds it for seconds (drawing the calendar picture was one: 26 s for 27 years)
stalls all of them. `run` hands such work to a worker thread and awaits it, so the
loop keeps serving while it computes.

* **Threads.** Each event loop has a `CapacityLimiter` of `CPU_THREADS` tokens for this
  work, not anyio's default one (shared with file reads and store probes): a flood of
  pictures waits for these few threads and cannot take every thread of the process.
* **Time.** Each run has a budget in seconds, counted from the call (waiting for a
  thread included). Past it the caller gets `TooSlow`, a `UserError` in plain words,
  never a result that came later.
  A thread cannot be killed, so the work is handed a `Deadline` and calls
  `Deadline.check` between its steps (a picture: between months and between
  attempts); a started thread is awaited until it stops at its next check, so it never
  holds its token, or the process's CPU, past the budget by more than one step.

Stores have their own offload (`writes/offload.py`, `oauth/offload.py`): their calls
wait on locks and the network rather than compute, and have threads of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from .errors import UserError

__all__ = ["CPU_THREADS", "Deadline", "TooSlow", "limiter", "run"]

T = TypeVar("T")

#: Worker threads CPU-heavy work may use at once, per event loop. Python runs one
#: thread's bytecode at a time: more threads would not draw faster, only let more
#: pictures queue inside the process instead of waiting here for their turn.
CPU_THREADS = 2

_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("tradavity_mcp.cpu")


def limiter() -> anyio.CapacityLimiter:
    """This event loop's tokens for CPU-heavy work (made on first use)."""
    try:
        return _LIMITER.get()
    except LookupError:
        tokens = anyio.CapacityLimiter(CPU_THREADS)
        _LIMITER.set(tokens)
        return tokens


class TooSlow(UserError):
    """CPU-heavy work ran past its budget and was stopped."""

    def __init__(self, what: str, seconds: float, advice: str) -> None:
        super().__init__(
            f"{what} was stopped: it took longer than {seconds:g} s (the server may be busy "
            f"with other work). {advice}"
        )


@dataclass(frozen=True)
class Deadline:
    """When a run's budget ends; `check` between steps stops the work past it."""

    at: float  # time.monotonic()
    what: str
    seconds: float
    advice: str

    def left(self) -> float:
        """Seconds left of the budget (negative once past it)."""
        return self.at - time.monotonic()

    def check(self) -> None:
        """Raise `TooSlow` once the budget is spent."""
        if time.monotonic() > self.at:
            raise TooSlow(self.what, self.seconds, self.advice)


async def run(work: Callable[[Deadline], T], *, seconds: float, what: str, advice: str = "") -> T:
    """`work(deadline)` in a worker thread under this loop's `limiter`, within `seconds`
    (waiting for a thread included); `TooSlow` past them. `what` names the work in the
    refusal ("The calendar picture"); `advice` says what to do instead."""
    deadline = Deadline(time.monotonic() + seconds, what, seconds, advice)
    with anyio.move_on_after(seconds):
        # A started thread is waited for (it stops itself at its next check); a call
        # still waiting for a token is given up at once.
        result = await anyio.to_thread.run_sync(work, deadline, limiter=limiter())
        deadline.check()  # an answer later than the budget is not given either
        return result
    raise TooSlow(what, seconds, advice)
