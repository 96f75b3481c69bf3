"""MCP logging for 2025-era clients: `logging/setLevel`, then the server's own log lines
at and above that level as `notifications/message` to that session.

The 2026-07-28 revision drops `logging/setLevel` (a request opts in through `_meta`);
most hosts still speak the 2025 eras, where a client sets a level once per session.

What a session is told is bounded two ways:

* **Whose lines.** A line logged while a request of one user is served (the workspace
  is current) goes only to that user's sessions. A line logged outside any request
  (start-up, the resumer, the sync poller) goes to every session only when the server
  serves one journal (stdio, a server token, loopback); with per-user keys, to none.
* **Never a key.** Anything shaped like a Tradavity key is replaced before it is sent
  (`hide_keys`); the project's own lines never hold one, this is the second lock.

Log lines come from any thread (the store's workers, `cpu.run`); they are queued and
sent by one task on the server's event loop, oldest first, at most `QUEUE` waiting
(beyond that a line is dropped, never the server slowed). The handler is on the
`tradavity_mcp` logger only while the server runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import EmptyResult, LoggingLevel, SetLevelRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..settings import API_KEY_PATTERN
from .workspace import CURRENT_WORKSPACE

__all__ = ["ClientLog", "hide_keys", "install_client_logging"]

#: The loggers whose lines a client may ask for: the server's own.
SOURCE = "tradavity_mcp"
QUEUE = 1000

#: MCP's levels (RFC 5424, ascending) as Python's numbers.
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": 25,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": 60,
    "emergency": 70,
}


def mcp_level(levelno: int) -> LoggingLevel:
    """The MCP level of a Python record: the highest one at or below its number."""
    name: LoggingLevel = "debug"
    for candidate, number in LEVELS.items():
        if levelno >= number:
            name = candidate  # type: ignore[assignment]  # the keys are LoggingLevel's
    return name


def hide_keys(text: str) -> str:
    """`text` with every Tradavity key in it replaced."""
    return API_KEY_PATTERN.sub("tvty_[hidden]", text) if "tvty_" in text else text


@dataclass
class _Listener:
    threshold: int
    principal: str | None


@dataclass(frozen=True)
class _Line:
    levelno: int
    logger: str
    text: str
    principal: str | None


class ClientLog(logging.Handler):
    """The sessions that set a level, and the lines on their way to them."""

    def __init__(self, *, one_journal: bool) -> None:
        super().__init__(logging.DEBUG)
        self.one_journal = one_journal
        self._listeners: dict[Any, _Listener] = {}
        self._send: MemoryObjectSendStream[_Line] | None = None
        self._loop_thread: int | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None

    async def on_set_level(
        self, ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams
    ) -> EmptyResult:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return EmptyResult()  # 2026: a request opts in through its `_meta`, not this
        ws = CURRENT_WORKSPACE.get()
        threshold = LEVELS[params.level]
        # One entry per connection (the session object is the request's; the SDK sends
        # a connection's unrelated notifications on its standalone channel).
        connection = ctx.session._connection
        self._listeners[connection] = _Listener(threshold, ws.principal if ws else None)
        source = logging.getLogger(SOURCE)
        if source.getEffectiveLevel() > threshold:
            source.setLevel(threshold)  # stderr keeps its own level (`logs.log_to_stderr`)
        return EmptyResult()

    # --- from any thread -------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        send = self._send
        if send is None or not self._listeners:
            return
        if all(record.levelno < listener.threshold for listener in self._listeners.values()):
            return
        ws = CURRENT_WORKSPACE.get()
        try:
            text = hide_keys(record.getMessage())
        except Exception:  # a record whose arguments do not format: say so, not crash
            text = hide_keys(str(record.msg))
        line = _Line(record.levelno, record.name, text, ws.principal if ws else None)

        def put() -> None:
            # A full queue drops the line; the stderr log still has it.
            with contextlib.suppress(
                anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
            ):
                send.send_nowait(line)

        if threading.get_ident() == self._loop_thread:
            put()
        elif self._call_soon is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._call_soon(put)

    # --- on the event loop -----------------------------------------------------------

    async def run(self) -> None:
        """Send queued lines until cancelled (runs in the server's task group)."""
        import asyncio  # noqa: PLC0415 (the loop the server runs on, for other threads)

        loop = asyncio.get_running_loop()
        send, receive = anyio.create_memory_object_stream[_Line](QUEUE)
        self._loop_thread = threading.get_ident()
        self._call_soon = loop.call_soon_threadsafe
        self._send = send
        source = logging.getLogger(SOURCE)
        level = source.level
        source.addHandler(self)
        try:
            async with send, receive:
                await self._deliver(receive)
        finally:
            source.removeHandler(self)
            source.setLevel(level)
            self._send = None
            self._call_soon = None

    async def _deliver(self, receive: MemoryObjectReceiveStream[_Line]) -> None:
        async for line in receive:
            for connection, listener in list(self._listeners.items()):
                if line.levelno < listener.threshold or not self._may_see(listener, line):
                    continue
                params = {
                    "level": mcp_level(line.levelno),
                    "logger": line.logger,
                    "data": line.text,
                }
                try:
                    await connection.notify("notifications/message", params)
                except Exception:  # a gone connection: forget it
                    self._listeners.pop(connection, None)

    def _may_see(self, listener: _Listener, line: _Line) -> bool:
        if line.principal is None:
            return self.one_journal
        return line.principal == listener.principal


def install_client_logging(mcp: MCPServer[Any], *, one_journal: bool) -> ClientLog:
    """Answer `logging/setLevel` (advertising the `logging` capability) and forward the
    server's log lines; the caller runs `ClientLog.run` in the server's task group.

    Like `resources/subscribe` (`sync.notifier`), a spec method the 2026 revision removed
    is re-provided through the low-level server's `add_request_handler`."""
    handler = ClientLog(one_journal=one_journal)
    low = mcp._lowlevel_server
    low.add_request_handler("logging/setLevel", SetLevelRequestParams, handler.on_set_level)
    return handler
