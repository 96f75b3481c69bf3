"""Slow clients and open connections, for every HTTP server here (the MCP server, the
sandbox, the tests' servers).

uvicorn on its own times out only a kept-alive connection that sits idle: a client that
sends its request a byte at a time, or connects and sends nothing, holds its connection
for ever, and a few hundred such clients take every file descriptor the process may
open. `ConnectionLimits.protocol` is uvicorn's h11 protocol with these rules added:

- Headers: the request line and headers must all be in within `header_timeout`,
  counted from the connection's opening, or from the first byte of its next request.
  Else the client gets a 408 (a connection that sent nothing is just closed).
- Body: once the headers are in, the body must follow within `body_timeout`, plus one
  second for every `BODY_MIN_RATE` bytes received, so a large upload on a slow link goes
  through and a trickle does not. Time the app spends not reading does not count.
- A request that is all in is never timed out here: its response may stream for hours
  (`/sync/stream`, the MCP GET stream).
- At most `max_connections` are open at once, fewer when the open-files limit is low.
  One more closes the connection that has waited longest for its request (idle, or still
  sending its headers: slowloris' own first), or, when every one is busy with a request,
  is answered 503. A connection carries one request at a time, so this also caps the
  requests in progress.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = [
    "BACKLOG",
    "BODY_MIN_RATE",
    "ConnectionLimits",
    "accept_batch",
    "open_files_limit",
    "raise_open_files_limit",
]

logger = logging.getLogger(__name__)

#: Bytes a second a request body must keep up, after its first `body_timeout` seconds.
BODY_MIN_RATE = 1024
#: Connections the kernel queues before the server accepts them (uvicorn's default), and
#: asyncio's batch at one wake-up (see `accept_batch`).
BACKLOG = 2048


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send its request, and how many connections may be
    open at once (see the module's docstring)."""

    header_timeout: float = 30.0
    body_timeout: float = 30.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number of seconds above 0; got {value!r}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be 1 or more; got {self.max_connections!r}")

    def cap(self, open_files: int | None) -> int:
        """`max_connections`, lowered to leave room under the open-files limit for the
        files besides connections (logs, the ledger, the stores, the API client's pool)
        and for one batch of connections accepted before any is counted."""
        if open_files is None:
            return self.max_connections
        room = open_files - accept_batch(open_files) - max(64, open_files // 8)
        return max(1, min(self.max_connections, room))

    def protocol(self, open_files: int | None) -> type[asyncio.Protocol]:
        """uvicorn's h11 protocol with these limits, for one server (`http=` in its
        `Config`): its connections share one count and one queue of waiting ones."""
        cap = self.cap(open_files)
        if cap < self.max_connections:
            logger.warning(
                "the open-files limit (%s) leaves room for %d connections: serving at most "
                "that many (raise `ulimit -n` to serve %d)",
                open_files,
                cap,
                self.max_connections,
            )

        class GuardedH11Protocol(_GuardedH11):
            pass

        GuardedH11Protocol.limits = self
        GuardedH11Protocol.cap = cap
        GuardedH11Protocol.waiting = {}
        return GuardedH11Protocol


def open_files_limit() -> int | None:
    """The process's soft limit on open files; None where there is none or it is unknown."""
    try:
        import resource  # noqa: PLC0415 (not on Windows)
    except ImportError:  # pragma: no cover
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one, as far as the system allows:
    each connection is one, and a default of 256 or 1024 is soon reached."""
    try:
        import resource  # noqa: PLC0415 (not on Windows)
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        logger.debug("open-files limit: %s (the hard limit)", soft)
        return
    # An unlimited hard limit is not a value the soft one may take everywhere (macOS).
    targets = [hard] if hard != resource.RLIM_INFINITY else [1 << 20, 1 << 16, 10240]
    for target in targets:
        if soft != resource.RLIM_INFINITY and target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        logger.debug("open-files limit raised from %s to %s", soft, target)
        return
    logger.debug("open-files limit: %s (could not raise it toward %s)", soft, hard)


def accept_batch(open_files: int | None) -> int:
    """uvicorn's `backlog`: asyncio accepts up to this many connections at one wake-up,
    before any of them is counted, so under a low open-files limit it is kept small."""
    if open_files is None:
        return BACKLOG
    return max(16, min(BACKLOG, open_files // 8))


class _Phase(enum.Enum):
    HEAD = "head"  # waiting for the request line and headers
    IDLE = "idle"  # kept alive between requests (uvicorn's own timeout applies)
    BODY = "body"  # the headers are in, the body is arriving
    BUSY = "busy"  # the request is in: the app answers, or streams, as long as it needs
    GONE = "gone"


class _GuardedH11(H11Protocol):
    """One connection, under `ConnectionLimits` (the class `protocol` makes holds them,
    and the connections of its server still waiting for a request, oldest first)."""

    limits: ClassVar[ConnectionLimits]
    cap: ClassVar[int]
    waiting: ClassVar[dict[_GuardedH11, None]]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = _Phase.BUSY
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._answered = 0
        self._expects_continue = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _Flow(transport, self._app_reads)
        if len(self.connections) > self.cap and not self._make_room():
            return
        self._update()

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.BODY:
            self._deadline += len(data) / BODY_MIN_RATE
        super().data_received(data)
        self._update()

    def on_response_complete(self) -> None:
        self._answered += 1
        super().on_response_complete()
        self._update()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._leave()

    # --- the phase, its deadline, the queue of waiting connections --------------------

    def _update(self) -> None:
        if self._phase is _Phase.GONE:
            return
        if self.transport.is_closing():
            self._leave()
            return
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE and ours is h11.IDLE:
            started = self._answered == 0 or self._partial()
            phase = _Phase.HEAD if started else _Phase.IDLE
        elif theirs is h11.SEND_BODY:
            phase = _Phase.BODY
        else:
            phase = _Phase.BUSY
        if phase is not self._phase:
            self._enter(phase)

    def _enter(self, phase: _Phase) -> None:
        self._phase = phase
        self.waiting.pop(self, None)
        if phase in {_Phase.HEAD, _Phase.IDLE}:
            self.waiting[self] = None  # the newest at the end
        if phase is _Phase.HEAD:
            self._arm(self.limits.header_timeout)
        elif phase is _Phase.BODY:
            self._expects_continue = self.cycle.waiting_for_100_continue
            self._arm(self.limits.body_timeout)
        else:
            self._disarm()

    def _leave(self) -> None:
        self._phase = _Phase.GONE
        self.waiting.pop(self, None)
        self._disarm()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.time() + seconds
        self._timer = self.loop.call_at(self._deadline, self._due)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            self._leave()
            return
        now = self.loop.time()
        if self._phase is _Phase.BODY and self._app_behind():
            self._deadline = max(self._deadline, now + self.limits.body_timeout)
        if now < self._deadline:  # moved on by the body's bytes
            self._timer = self.loop.call_at(self._deadline, self._due)
            return
        if self._phase is _Phase.HEAD:
            if self._partial():
                logger.info(
                    "closed a connection from %s: its request headers were not all in after %g s",
                    self._address(),
                    self.limits.header_timeout,
                )
                self._close(
                    408,
                    f"The request line and headers took longer than "
                    f"{self.limits.header_timeout:g} s to arrive; the connection is closed.",
                )
            else:
                logger.debug("closed a connection from %s that sent nothing", self._address())
                self._close()
        elif self._phase is _Phase.BODY:
            logger.info(
                "closed a connection from %s: its request body came too slowly",
                self._address(),
            )
            self._close(
                408,
                f"The request body arrived too slowly: it has {self.limits.body_timeout:g} s, "
                f"and 1 s more for every {BODY_MIN_RATE} bytes received; the connection "
                "is closed.",
            )

    def _make_room(self) -> bool:
        """Over the cap: close the connection that has waited longest for a request, or
        refuse this one when all are busy. True when this one stays."""
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            logger.warning(
                "at the limit of %d open connections, each with a request in progress: "
                "refused a new one",
                self.cap,
            )
            self._close(
                503,
                f"The server is at its limit of {self.cap} open connections; try again "
                "in a moment.",
            )
            return False
        logger.warning(
            "at the limit of %d open connections: closed the one that had waited longest "
            "for a request",
            self.cap,
        )
        if oldest._partial():
            oldest._close(
                503,
                f"The server is at its limit of {self.cap} open connections, and this "
                "request was still incomplete; the connection is closed.",
            )
        else:
            oldest._close()
        return True

    def _app_reads(self, was_paused: bool) -> None:
        """The app asks for the body (uvicorn resumes reading): when it was behind, the
        client's time starts again now."""
        if self._phase is not _Phase.BODY:
            return
        continued = self._expects_continue and not self.cycle.waiting_for_100_continue
        if was_paused or continued:
            self._expects_continue = False
            self._deadline = max(self._deadline, self.loop.time() + self.limits.body_timeout)

    def _app_behind(self) -> bool:
        """The body waits on the app, not the client: the app has not read what came
        (reading is paused), or has not asked for the body a client sending
        `Expect: 100-continue` waits to be asked for."""
        cycle = self.cycle
        return self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)

    def _partial(self) -> bool:
        """Bytes of a request that has not been read in full yet."""
        return bool(self.conn.trailing_data[0])

    def _address(self) -> str:
        return self.client[0] if self.client else "an unknown address"

    def _close(self, status: int | None = None, text: str = "") -> None:
        """Close now, with a plain-text answer when nothing has been answered yet."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                status = None
            # The app's receive() now says "disconnected" and its sends go nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        if status is not None:
            self.transport.write(_plain_response(status, text))
        self.connections.discard(self)  # counted out now, not when the loop gets to it
        self._leave()
        self.transport.close()


class _Flow(FlowControl):
    """uvicorn's flow control, which also tells the connection each time the app asks
    for more of the body, and whether reading was paused until then."""

    def __init__(self, transport: asyncio.Transport, reads: Callable[[bool], None]) -> None:
        super().__init__(transport)
        self._reads = reads

    def resume_reading(self) -> None:
        self._reads(self.read_paused)
        super().resume_reading()


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


def _plain_response(status: int, text: str) -> bytes:
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return (head + "\r\n").encode() + body
