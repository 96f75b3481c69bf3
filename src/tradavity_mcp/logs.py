"""The one log handler: stderr, where a failure that repeats cannot fill the disk.

Every logger writes through it: ours, uvicorn's (served with `log_config=None`, so its
records reach the root logger) and asyncio's. A server out of file descriptors, say,
logs the same traceback thousands of times a second; `QuietRepeats` shows it once, then
says how many times it came.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TextIO

__all__ = ["FORMAT", "QuietRepeats", "log_to_stderr"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: How long the same record is counted rather than shown, in seconds.
WINDOW_SECONDS = 10.0
#: Distinct records tracked at once; beyond, the oldest one's count is reported early.
MAX_TRACKED = 1024
#: How much of the message a repeat count quotes.
QUOTE_CHARS = 200

_Key = tuple[str, int, str, tuple[str, str, int] | None]


@dataclass
class _Seen:
    record: logging.LogRecord  # the one shown, without its traceback
    first: float
    last: float
    count: int = 0  # held back since it was shown


class QuietRepeats(logging.StreamHandler[TextIO]):
    """A stream handler that shows a record, then for `window` seconds counts rather
    than shows the same one again: the same logger, level and message, and for an
    exception its type and the line that raised it. When the window is over, one line
    in the record's name says how many came ("repeated 1,234 more times in 9.9 s: ..."),
    and the next one is shown again and opens a new window.

    A count is written when its window ends (a timer thread), and any still open at
    `report()` or when the handler is closed."""

    def __init__(self, stream: TextIO | None = None, *, window: float = WINDOW_SECONDS) -> None:
        super().__init__(stream)
        self.window = window
        self._seen: dict[_Key, _Seen] = {}  # oldest window first
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (`Handler.handle`).
        now = time.monotonic()
        self._report(now - self.window)
        key = _key(record)
        seen = self._seen.get(key)
        if seen is not None:
            seen.count += 1
            seen.last = now
            if self._timer is None:
                self._start_timer(seen.first + self.window - now)
            return
        self._seen[key] = _Seen(_stripped(record), now, now)
        if len(self._seen) > MAX_TRACKED:
            self._report_one(next(iter(self._seen)))
        super().emit(record)

    def report(self) -> None:
        """Write every count held back now, the windows still open included."""
        with self.lock or nullcontext():
            self._report(math.inf)

    def close(self) -> None:
        self.report()
        with self.lock or nullcontext():
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        super().close()

    def _start_timer(self, seconds: float) -> None:
        self._timer = threading.Timer(max(0.0, seconds), self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self.lock or nullcontext():
            self._timer = None
            now = time.monotonic()
            self._report(now - self.window)
            pending = [seen.first for seen in self._seen.values() if seen.count]
            if pending:
                self._start_timer(min(pending) + self.window - now)

    def _report(self, opened_by: float) -> None:
        """Write the counts of the windows opened by `opened_by` (oldest first), and
        forget those windows."""
        while self._seen:
            key, seen = next(iter(self._seen.items()))
            if seen.first > opened_by:
                return
            self._report_one(key)

    def _report_one(self, key: _Key) -> None:
        seen = self._seen.pop(key)
        if seen.count:
            super().emit(_repeat_record(seen))


def _key(record: logging.LogRecord) -> _Key:
    try:
        message = record.getMessage()
    except Exception:  # a bad format: logging reports it when the record is written
        message = str(record.msg)
    raised: tuple[str, str, int] | None = None
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ("", 0)
        raised = (type(exc).__qualname__, *where)
    return (record.name, record.levelno, message, raised)


def _stripped(record: logging.LogRecord) -> logging.LogRecord:
    """What a repeat count needs of a record: where it came from and its first line
    (holding the record itself would keep its traceback's frames alive)."""
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    quote = message.splitlines()[0] if message else ""
    if len(quote) > QUOTE_CHARS:
        quote = quote[:QUOTE_CHARS] + "..."
    if record.exc_info and record.exc_info[1] is not None:
        quote += f" ({type(record.exc_info[1]).__name__})"
    return logging.LogRecord(
        record.name, record.levelno, record.pathname, record.lineno, quote, None, None
    )


def _repeat_record(seen: _Seen) -> logging.LogRecord:
    shown = seen.record
    return logging.LogRecord(
        shown.name,
        shown.levelno,
        shown.pathname,
        shown.lineno,
        "repeated %s more times in %.1f s: %s",
        (f"{seen.count:,}", seen.last - seen.first, shown.msg),
        None,
    )


def log_to_stderr(level: int | str) -> None:
    """Everything logged goes to stderr through one `QuietRepeats`, at `level`; the
    counts it holds back are written at exit, on SIGTERM too (`_report_before_sigterm`)."""
    logging.basicConfig(level=level, format=FORMAT, handlers=[QuietRepeats(sys.stderr)])
    _report_before_sigterm()


def _report_before_sigterm() -> None:
    """On SIGTERM, write the counts held back before the process ends. uvicorn shuts
    down on it, then raises it again under the handler found at its start (this one);
    the default action would end the process without `atexit`, and lose the counts."""
    if threading.current_thread() is not threading.main_thread():
        return

    def report_then_end(signum: int, frame: object) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, QuietRepeats):
                handler.report()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, report_then_end)
