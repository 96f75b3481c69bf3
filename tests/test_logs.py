"""The stderr handler: a record repeated thousands of times is shown once, then counted."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tradavity_mcp.logs import FORMAT, QuietRepeats

Logged = tuple[logging.Logger, io.StringIO, QuietRepeats]


@pytest.fixture
def quiet() -> Iterator[Callable[[float], Logged]]:
    """Makes a logger writing through `QuietRepeats` (with that window) to a string."""
    handlers: list[QuietRepeats] = []

    def make(window: float) -> Logged:
        stream = io.StringIO()
        handler = QuietRepeats(stream, window=window)
        handler.setFormatter(logging.Formatter(FORMAT))
        handlers.append(handler)
        # A logger of its own, outside the logging tree (and out of pytest's capture).
        logger = logging.Logger("test.quiet", logging.DEBUG)
        logger.addHandler(handler)
        return logger, stream, handler

    yield make
    for handler in handlers:
        handler.close()


def _accept_fails() -> None:
    raise OSError(24, "Too many open files")


def _wait_for(stream: io.StringIO, text: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while text not in stream.getvalue():
        assert time.monotonic() < deadline, f"{text!r} never came; got:\n{stream.getvalue()}"
        time.sleep(0.02)
    return stream.getvalue()


def _flood(logger: logging.Logger, times: int) -> None:
    for _ in range(times):
        try:
            _accept_fails()
        except OSError:
            logger.exception("socket.accept() out of system resource")


def test_a_traceback_repeated_ten_thousand_times_is_shown_once_then_counted(
    quiet: Callable[[float], Logged],
) -> None:
    logger, stream, handler = quiet(60.0)
    _flood(logger, 10_000)
    out = stream.getvalue()
    assert out.count("Traceback (most recent call last)") == 1
    assert out.count("OSError: [Errno 24] Too many open files") == 1
    handler.report()
    out = stream.getvalue()
    last = out.splitlines()[-1]
    assert " ERROR test.quiet: repeated 9,999 more times in " in last
    assert last.endswith(" s: socket.accept() out of system resource (OSError)")
    assert len(out) < 2_000  # one traceback and one count, not 10,000 tracebacks (~4 MB)


def test_the_count_comes_when_the_window_ends_then_the_record_shows_again(
    quiet: Callable[[float], Logged],
) -> None:
    logger, stream, _ = quiet(0.3)
    _flood(logger, 50)
    assert stream.getvalue().count("Traceback") == 1
    # On its own, when the window is over: no later record is needed.
    _wait_for(stream, "repeated 49 more times in ")
    _flood(logger, 3)
    out = stream.getvalue()
    assert out.count("Traceback") == 2
    _wait_for(stream, "repeated 2 more times in ")


def test_different_messages_levels_and_raising_lines_are_each_shown(
    quiet: Callable[[float], Logged],
) -> None:
    logger, stream, handler = quiet(60.0)
    for trade in (1, 2, 3):
        logger.info("finished pending %s call", f"journal_trade #{trade}")
    logger.warning("finished pending %s call", "journal_trade #1")
    for fails in (_accept_fails, lambda: int("x")):
        try:
            fails()
        except (OSError, ValueError):
            logger.exception("request failed")
    logger.info("finished pending %s call", "journal_trade #1")  # a repeat: held back
    out = stream.getvalue()
    assert [line.split(": ", 1)[1] for line in out.splitlines() if "pending" in line] == [
        "finished pending journal_trade #1 call",
        "finished pending journal_trade #2 call",
        "finished pending journal_trade #3 call",
        "finished pending journal_trade #1 call",  # the WARNING one
    ]
    assert out.count("Traceback") == 2
    assert "ValueError" in out
    assert "OSError" in out
    handler.report()  # what closing (and SIGTERM) do: the open window's count, now
    last = stream.getvalue().splitlines()[-1]
    assert f"INFO {logger.name}: repeated 1 more times in " in last
    assert last.endswith(" s: finished pending journal_trade #1 call")


_SIGTERMED = """
import logging, os, signal
from tradavity_mcp.logs import log_to_stderr
log_to_stderr("WARNING")
for _ in range(500):
    logging.getLogger("flood").error("the same failure")
os.kill(os.getpid(), signal.SIGTERM)
"""


def test_counts_held_back_are_written_before_sigterm_ends_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERMED], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGTERM  # still ended by the signal, as before
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].endswith("ERROR flood: the same failure")
    assert "ERROR flood: repeated 499 more times in " in lines[1]
