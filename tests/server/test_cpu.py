"""CPU-heavy work off the event loop (`server/cpu.py`): real worker threads, real time."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from tradavity_mcp.server import cpu
from tradavity_mcp.server.errors import UserError

pytestmark = pytest.mark.anyio


def _spin(seconds: float, deadline: cpu.Deadline | None = None) -> int:
    """Pure-Python work for `seconds` (holding the GIL as drawing does), checking the
    deadline between steps when given one."""
    steps, until = 0, time.monotonic() + seconds
    while time.monotonic() < until:
        sum(range(2_000))
        steps += 1
        if deadline is not None:
            deadline.check()
    return steps


async def test_the_loop_keeps_serving_while_work_runs() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    caller = threading.get_ident()
    ran_in: list[int] = []

    def work(deadline: cpu.Deadline) -> int:
        ran_in.append(threading.get_ident())
        return _spin(0.6, deadline)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        steps = await cpu.run(work, seconds=10, what="Spinning")
        tg.cancel_scope.cancel()
    assert steps > 0
    assert ran_in
    assert ran_in[0] != caller
    assert ticks >= 10  # 0.6 s of work on the loop would have left it at 0 or 1


async def test_at_most_cpu_threads_run_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(deadline: cpu.Deadline) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        _spin(0.15)
        with lock:
            running -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(3 * cpu.CPU_THREADS):
            tg.start_soon(lambda: cpu.run(work, seconds=30, what="Spinning"))
    assert peak == cpu.CPU_THREADS
    assert cpu.limiter().total_tokens == cpu.CPU_THREADS
    assert cpu.limiter() is cpu.limiter()  # one per event loop


async def test_work_past_its_budget_stops_at_its_next_check() -> None:
    started = time.monotonic()
    with pytest.raises(cpu.TooSlow) as refused:
        await cpu.run(
            lambda deadline: _spin(30, deadline),
            seconds=0.4,
            what="The spinning",
            advice="Spin less.",
        )
    assert time.monotonic() - started < 5  # stopped near 0.4 s, not after 30
    assert isinstance(refused.value, UserError)  # the model reads it as words
    assert str(refused.value) == (
        "The spinning was stopped: it took longer than 0.4 s (the server may be busy with "
        "other work). Spin less."
    )
    assert cpu.limiter().borrowed_tokens == 0  # its thread gave its token back


async def test_a_call_waiting_for_a_thread_is_refused_at_its_budget() -> None:
    """A flood of work cannot queue forever: with every thread busy for 2 s, a call with
    a 0.3 s budget is refused at 0.3 s, never started."""
    started_late: list[bool] = []
    refused_after: list[float] = []

    async def busy() -> None:
        await cpu.run(lambda d: _spin(2.0), seconds=30, what="Busy work")

    async def late() -> None:
        began = time.monotonic()
        with pytest.raises(cpu.TooSlow, match=r"longer than 0\.3 s"):
            await cpu.run(lambda d: started_late.append(True), seconds=0.3, what="Late work")
        refused_after.append(time.monotonic() - began)

    async with anyio.create_task_group() as tg:
        for _ in range(cpu.CPU_THREADS):
            tg.start_soon(busy)
        await anyio.sleep(0.2)  # both threads taken
        assert cpu.limiter().borrowed_tokens == cpu.CPU_THREADS
        tg.start_soon(late)
    assert not started_late
    assert refused_after[0] < 1.5  # at its budget, not when a thread came free (~2 s)
