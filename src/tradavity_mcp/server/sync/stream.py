"""`GET /sync/stream`: sync events as Server-Sent Events, for hosted agents.

The stream opens with a `: connected` comment, replays the last `replay` events
(default 20, at most 200; or every event after `Last-Event-ID`), then sends each new
event as `event: sync.status` with its sequence number as the SSE `id`, and a
`: heartbeat` comment every 15 seconds. Reconnecting with `Last-Event-ID` (or a large
enough `replay`) misses nothing from the last 24 hours that this process (or Redis)
holds; ids grow across restarts, and an id this history never gave out gets a
`sync.reset` event before the latest events. Authentication is the same as for `/mcp`.

A stream opened with a bearer that can end while the stream is open (an OAuth access
token: its grant revoked, or the token expired) is checked again every
`recheck_seconds`: once it no longer stands, the stream sends `: authorization ended`
and closes, delivering nothing more. The client reconnects with a fresh token and
`Last-Event-ID`, and misses nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ...api.clock import Now
from ..errors import UserError
from ..workspace import Workspace
from .monitor import SyncEvent

__all__ = ["HEARTBEAT_SECONDS", "RECHECK_SECONDS", "STILL_AUTHORIZED", "sync_stream_endpoint"]

HEARTBEAT_SECONDS = 15.0
RECHECK_SECONDS = 10.0
DEFAULT_REPLAY = 20
MAX_REPLAY = 200

Authenticate = Callable[[Request], Awaitable[Workspace | Response]]

#: Where, in a request's scope state, the HTTP guard leaves a check of a bearer that can
#: end while a stream is open (`StillAuthorized`: False once it no longer stands).
STILL_AUTHORIZED = "tradavity_mcp.still_authorized"
StillAuthorized = Callable[[], Awaitable[bool]]


#: Sent first when a Last-Event-ID is not one this history gave out: what it missed
#: cannot be told, so the client starts over from the replay that follows.
_RESET = (
    "event: sync.reset\ndata: "
    + json.dumps(
        {
            "reason": "Last-Event-ID is not an id of this server's sync history; the "
            "latest events follow, start over from them"
        }
    )
    + "\n\n"
)


def _frame(event: SyncEvent) -> str:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: sync.status\ndata: {data}\n\n"


def sync_stream_endpoint(
    authenticate: Authenticate,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    clock: Now = time.monotonic,
    poll_seconds: float = 1.0,
    recheck_seconds: float = RECHECK_SECONDS,
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint. `clock` decides when a heartbeat (and a check of the bearer) is due
    (tests pass one they move); `poll_seconds` is how often it is consulted while the
    stream is idle; `recheck_seconds` how often a bearer that can end is checked again."""

    async def endpoint(request: Request) -> Response:
        who = await authenticate(request)
        if isinstance(who, Response):
            return who
        ws = who
        raw = request.query_params.get("replay", str(DEFAULT_REPLAY))
        if not raw.isdigit() or int(raw) > MAX_REPLAY:
            return JSONResponse(
                {"error": f"replay must be a whole number from 0 to {MAX_REPLAY}"}, status_code=400
            )
        state = request.scope.get("state") or {}
        still: StillAuthorized | None = state.get(STILL_AUTHORIZED)
        recheck = _Recheck(still, recheck_seconds, clock) if still is not None else None
        last_id = request.headers.get("last-event-id", "")
        # Subscribe before reading the backlog, so nothing falls between the two.
        live = _Live()
        unsubscribe = ws.sync.subscribe(live.on_event)
        reset = last_id.isdigit() and not ws.sync.knows_seq(int(last_id))
        try:
            if last_id.isdigit() and not reset:
                backlog = await ws.sync.events_after(int(last_id))
            else:
                backlog = list(reversed(await ws.sync.events(int(raw))))
        except UserError as exc:  # the shared sync history is out of reach for a moment
            unsubscribe()
            live.close()
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})
        except BaseException:
            unsubscribe()
            live.close()
            raise
        return StreamingResponse(
            _stream(
                live,
                unsubscribe,
                backlog,
                heartbeat_seconds,
                clock,
                poll_seconds,
                recheck,
                reset=reset,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return endpoint


class _Recheck:
    """When the stream's bearer is checked again, and the check."""

    def __init__(self, still: StillAuthorized, every: float, clock: Now) -> None:
        self.still, self.every, self.clock = still, every, clock
        self.due = clock() + every

    async def ended(self) -> bool:
        """True once the bearer no longer stands (checked when due, else False)."""
        if self.clock() < self.due:
            return False
        if not await self.still():
            return True
        self.due = self.clock() + self.every
        return False


class _Live:
    """The events that arrive while a stream is open, buffered for it."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[SyncEvent](256)

    def on_event(self, event: SyncEvent) -> None:
        # A client too slow to read loses live events; it reconnects with Last-Event-ID.
        with contextlib.suppress(
            anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            self.send.send_nowait(event)

    def close(self) -> None:
        self.send.close()
        self.receive.close()


async def _stream(
    live: _Live,
    unsubscribe: Callable[[], None],
    backlog: list[SyncEvent],
    heartbeat_seconds: float,
    clock: Now,
    poll_seconds: float,
    recheck: _Recheck | None,
    *,
    reset: bool = False,
) -> AsyncIterator[str]:
    send, receive = live.send, live.receive
    last_sent = backlog[-1].seq if backlog else 0
    try:
        # The heartbeat period starts when the stream opens, not after the backlog is
        # written: a client may already be waiting on the clock by then.
        last_beat = clock()
        async with send, receive:
            yield ": connected\n\n"
            if reset:
                yield _RESET
            for event in backlog:
                yield _frame(event)
            while True:
                received: SyncEvent | None = None
                with anyio.move_on_after(poll_seconds):
                    received = await receive.receive()
                # Yield outside the cancel scope: a generator must not suspend inside one.
                # The bearer is checked before anything more is sent.
                if recheck is not None and await recheck.ended():
                    yield ": authorization ended\n\n"
                    return
                if received is not None:
                    if received.seq > last_sent:
                        last_sent = received.seq
                        yield _frame(received)
                    continue
                if clock() - last_beat >= heartbeat_seconds:
                    last_beat = clock()
                    yield ": heartbeat\n\n"
    finally:
        unsubscribe()
