"""Sync state every replica shares through Redis (`--redis`): runs and events, the
manual-sync cooldown, and the subscription bus.

Without `--redis` none of this is used: `monitor.SyncMonitor` and `notifier.PrincipalBus`
keep the same things in the process. With it, `build_server` makes one `RedisSync` per
process around the process's Redis client; each workspace gets the `RedisSyncMonitor` of
its principal, and the MCP server gets `RedisSync.bus`.

Keys (one principal's share one hash tag, so a Redis Cluster keeps them together):

* `tradavity:sync:{P}:events`, a stream: one entry per event, its fields as JSON in `e`.
  The entry id is `<ms>-<n>`, ms being the server clock's time of the write, and the
  event's `seq` (its SSE id) is `ms * 1000 + n`: it grows across replicas, it is anchored
  in time (it never goes back, not even after Redis lost its data) and stays exact as a
  JSON number. Each append trims the stream to 24 hours (MINID) and `MAX_EVENTS`
  (MAXLEN), both approximately, so Redis drops whole nodes; reads apply both exactly.
* `tradavity:sync:{P}:logs`, a hash: which rows of the platform's sync log are a run
  already, so a row read on two replicas becomes one run.
* `tradavity:sync:{P}:cooldown`, a hash: each connection's last manual sync.
* `tradavity:sync:{P}:op:<id>`: a write already applied (a write retried after its reply
  was lost is not applied twice).

Channels: `tradavity:sync` carries each event as it is appended (the append script
publishes it, so every replica hears a principal's events in stream order) and
`tradavity:bus` the subscription bus's events.

Writes are recorded synchronously and sent by one background writer, in order; while Redis
is away they wait in the process and go out when it answers again. A replica whose
subscription was cut reads what it missed from the streams once it is back. The outage is
logged once (a warning), its end once (info).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

import anyio
import anyio.lowlevel
from mcp.server.subscriptions import ServerEvent
from mcp.shared.subscriptions import event_from_wire, event_to_notification
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...api.clock import Now
from ..errors import UserError
from .monitor import COOLDOWN_SECONDS, EVENT_TTL_SECONDS, MAX_EVENTS, SyncEvent, SyncMonitor
from .notifier import PrincipalBus

__all__ = ["RedisPrincipalBus", "RedisSync", "RedisSyncMonitor", "SyncUnavailable"]

logger = logging.getLogger("tradavity_mcp.sync")

#: Failures that mean "Redis is away for now": the write waits and is tried again.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, OSError)
#: How long keys live in Redis (real time) after their last write: a day's events and
#: then some; the cooldown and log hashes go with them.
KEEP_SECONDS = 2 * 86400
#: How long a write's applied-marker lives: far longer than any retry of it.
OP_MARK_SECONDS = 3600
#: How long a read waits for this process's own writes before it reads anyway.
FLUSH_SECONDS = 2.0
#: Writes held in the process while Redis is away; beyond this the newest are dropped.
MAX_OUTBOX = 10_000
#: Entries read per round trip.
PAGE = 200
#: The writer's and the reader's pause after a failure: from the first to the last.
RETRY_FIRST, RETRY_MAX = 0.05, 1.0
#: How long the reader waits for a message before it looks at its state again.
READ_SECONDS = 0.5

_FINAL = frozenset({"completed", "failed", "cancelled"})
_EVENT_FIELDS = frozenset(f.name for f in fields(SyncEvent)) - {"seq"}

# Append one event. KEYS: stream, logs hash, op marker. ARGV: now (ms), floor seq, event
# JSON, MINID (ms), MAXLEN, channel, principal, log id, log mode ('', 'bind', 'claim'),
# run id, keep seconds, op mark seconds. Returns the entry id, or false if not appended
# (the op was applied before, or the log row is a run already).
_APPEND = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[12]) then return false end
if ARGV[9] == 'claim' then
  if redis.call('HSETNX', KEYS[2], ARGV[8], ARGV[10]) == 0 then return false end
  redis.call('EXPIRE', KEYS[2], ARGV[11])
elseif ARGV[9] == 'bind' then
  redis.call('HSET', KEYS[2], ARGV[8], ARGV[10])
  redis.call('EXPIRE', KEYS[2], ARGV[11])
end
local last = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local ms, n = string.match(info[i + 1], '^(%d+)-(%d+)$')
      last = math.max(last, tonumber(ms) * 1000 + tonumber(n))
    end
  end
end
local seq = math.max(tonumber(ARGV[1]) * 1000, last + 1)
local ms = math.floor(seq / 1000)
local id = string.format('%.0f-%.0f', ms, seq - ms * 1000)
redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[4], id, 'e', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[11])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. '\\n' .. id .. '\\n' .. ARGV[3])
return id
"""

# Claim a connection for a manual sync. KEYS: cooldown hash. ARGV: connection, now,
# cooldown seconds, keep seconds. Returns the seconds left ('0': claimed).
_CLAIM = """
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if last then
  local left = last + tonumber(ARGV[3]) - tonumber(ARGV[2])
  if left > 0 then return tostring(left) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return '0'
"""

# Note a manual sync's time. KEYS: cooldown hash. ARGV: connection, time, mode ('set',
# 'max': unless later; 'release': remove the claim ARGV[5] if nothing replaced it), keep.
_NOTE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'release' then
  if current == ARGV[5] then redis.call('HDEL', KEYS[1], ARGV[1]) end
  return 0
end
if ARGV[3] == 'max' and current and tonumber(current) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 0
"""


class SyncUnavailable(UserError):
    """The shared sync history cannot be read right now (Redis does not answer)."""

    def __init__(self) -> None:
        super().__init__(
            "the sync history is out of reach for a moment (the shared store does not "
            "answer); try again in a few seconds"
        )


def _seq_of(entry_id: str) -> int:
    ms, _, n = entry_id.partition("-")
    return int(ms) * 1000 + int(n)


def _id_of(seq: int) -> str:
    return f"{seq // 1000}-{seq % 1000}"


def _encode(event: SyncEvent) -> str:
    data = asdict(event)
    del data["seq"]
    return json.dumps(data, separators=(",", ":"))


def _decode(seq: int, text: str) -> SyncEvent:
    data = json.loads(text)
    return SyncEvent(seq=seq, **{k: v for k, v in data.items() if k in _EVENT_FIELDS})


Op = Callable[[], Awaitable[None]]


class RedisSync:
    """One process's share of the sync state in Redis: its monitors (one per principal),
    the subscription bus, the writer that sends what they record and the reader that hands
    them what any replica published. `run` runs the writer and the reader until
    cancelled (in the server's task group)."""

    def __init__(
        self,
        redis: Redis,
        *,
        clock: Now,
        prefix: str = "tradavity:",
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self.max_events = max_events
        self.sync_channel = f"{prefix}sync"
        self.bus_channel = f"{prefix}bus"
        self.bus = RedisPrincipalBus(self)
        self.append_script = redis.register_script(_APPEND)
        self.claim_script = redis.register_script(_CLAIM)
        self.note_script = redis.register_script(_NOTE)
        self._monitors: dict[str, RedisSyncMonitor] = {}
        self._outbox: deque[tuple[int, Op]] = deque()
        self._queued = 0
        self._written = 0
        self._waiters: list[tuple[int, anyio.Event]] = []
        self._wake: anyio.Event | None = None
        self._down = False
        self._dropped = False
        #: When the reader lost its subscription (our clock), until it has caught up.
        self._cut_at: float | None = None

    def monitor(self, principal: str) -> RedisSyncMonitor:
        """The principal's monitor: one per process, whichever workspace asks."""
        found = self._monitors.get(principal)
        if found is None:
            found = self._monitors[principal] = RedisSyncMonitor(self, principal)
        return found

    def key(self, principal: str, name: str) -> str:
        return f"{self.prefix}sync:{{{principal}}}:{name}"

    # --- Redis away and back -------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        """Redis did not answer: say so once per outage."""
        if not self._down:
            self._down = True
            logger.warning(
                "Redis does not answer (%s): sync events wait in this process and are "
                "written when it is back; the sync history may be out of reach until then",
                type(exc).__name__,
            )
            for _, waiting in self._waiters:  # nobody waits for Redis while it is away
                waiting.set()

    def _back(self) -> None:
        if self._down:
            self._down = False
            logger.info("Redis answers again: sync events and subscriptions carry on")

    # --- writes --------------------------------------------------------------------------

    def enqueue(self, op: Op) -> int:
        """Queue one write; returns its number for `wait_written`."""
        if len(self._outbox) >= MAX_OUTBOX:
            if not self._dropped:
                self._dropped = True
                logger.error("Redis is away too long: %d sync writes held, dropping", MAX_OUTBOX)
            return self._queued
        self._queued += 1
        self._outbox.append((self._queued, op))
        if self._wake is not None:
            self._wake.set()
        return self._queued

    async def wait_written(self, number: int) -> bool:
        """Wait (at most `FLUSH_SECONDS`) until write `number` reached Redis; while Redis is
        known to be away, do not wait for it."""
        if self._written >= number or self._down:
            return self._written >= number
        done = anyio.Event()
        entry = (number, done)
        self._waiters.append(entry)
        try:
            with anyio.move_on_after(FLUSH_SECONDS):
                await done.wait()
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return self._written >= number

    async def _write_forever(self) -> None:
        pause = RETRY_FIRST
        while True:
            if not self._outbox:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            number, op = self._outbox[0]
            try:
                await op()
            except TRANSIENT as exc:
                self.lost(exc)
                await anyio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            except RedisError:  # refused for good (not an outage): do not block the rest
                logger.exception("Redis refused a sync write; skipping it")
            pause = RETRY_FIRST
            self._dropped = False
            self._outbox.popleft()
            self._written = number
            for waiter in [w for w in self._waiters if w[0] <= number]:
                waiter[1].set()

    # --- reads from other replicas -------------------------------------------------------

    async def _read_forever(self) -> None:
        pubsub = self.redis.pubsub()
        channels = (self.sync_channel, self.bus_channel)
        confirmed = 0  # subscriptions confirmed: past the first round, each is a reconnect
        heard_at = self.clock()  # when the subscription last answered
        pause = RETRY_FIRST
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(*channels)
                    message = await pubsub.get_message(timeout=READ_SECONDS)
                    if message is not None and message["type"] == "subscribe":
                        confirmed += 1
                        if confirmed > len(channels) and self._cut_at is None:
                            # redis-py reconnected and resubscribed on its own.
                            self._cut_at = heard_at
                        if confirmed % len(channels) == 0:  # all channels (again)
                            await self._caught_up()
                    elif message is None and self._down:
                        await self.redis.ping()
                        await self._caught_up()
                except TRANSIENT as exc:
                    if self._cut_at is None:
                        self._cut_at = heard_at
                    self.lost(exc)
                    await anyio.sleep(pause)
                    pause = min(pause * 2, RETRY_MAX)
                    continue
                pause = RETRY_FIRST
                heard_at = self.clock()
                if message is not None and message["type"] == "message":
                    self._dispatch(str(message["channel"]), str(message["data"]))
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _caught_up(self) -> None:
        """Subscribed (again): hand the monitors what was written while this process was
        not listening (after a cut, or before its reader started again)."""
        # A monitor that heard nothing yet starts a little before a cut, if there was one.
        cut = self._cut_at
        since = 0 if cut is None else int((cut - 5.0) * 1000) * 1000
        for monitor in list(self._monitors.values()):
            await monitor.catch_up(since)
        self._cut_at = None
        self._back()

    def _dispatch(self, channel: str, data: str) -> None:
        try:
            if channel == self.sync_channel:
                principal, entry_id, text = data.split("\n", 2)
                monitor = self._monitors.get(principal)
                if monitor is not None:
                    monitor.receive(_seq_of(entry_id), text)
            elif channel == self.bus_channel:
                self.bus.receive(data)
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring a malformed message on %s", channel)

    async def run(self) -> None:
        """The writer and the reader, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write_forever)
            tg.start_soon(self._read_forever)


class RedisSyncMonitor(SyncMonitor):
    """A principal's runs and events in Redis, for every replica (see the module).

    The runs this process started live here too until they end, so a run advances without
    reading Redis; everything else is read from Redis."""

    def __init__(self, hub: RedisSync, principal: str) -> None:
        super().__init__(hub.clock, max_events=hub.max_events)
        self._hub = hub
        self._max_events = hub.max_events
        self.principal = principal
        self._stream = hub.key(principal, "events")
        self._logs = hub.key(principal, "logs")
        self._cooldown = hub.key(principal, "cooldown")
        #: run id -> (connection, the time it claimed, as written) for claims held.
        self._claims: dict[str, tuple[int, str]] = {}
        #: The newest seq handed to listeners, and the newest this process wrote.
        self._delivered = 0
        self._wrote = 0
        self._last_op = 0

    # --- recording (sent by the hub's writer, in order) ---------------------------------

    def _new_run_id(self) -> str:
        # Unique across replicas (each counts its own runs).
        return f"run_{int(self._clock())}_{secrets.token_hex(4)}"

    def _emit(self, event: SyncEvent, *, log_id: int | None = None, new_log: bool = False) -> None:
        if event.stage in _FINAL:
            self._runs.pop(event.run_id, None)
        else:
            self._runs[event.run_id] = event
        mode = "claim" if new_log else ("bind" if log_id is not None else "")
        now_ms = int(self._clock() * 1000)
        mark = self._hub.key(self.principal, f"op:{secrets.token_hex(8)}")
        text = _encode(event)

        async def append() -> None:
            floor = max(self._delivered, self._wrote)
            entry_id = await self._hub.append_script(
                keys=[self._stream, self._logs, mark],
                args=[
                    now_ms,
                    floor,
                    text,
                    now_ms - int(EVENT_TTL_SECONDS * 1000),
                    self._max_events,
                    self._hub.sync_channel,
                    self.principal,
                    "" if log_id is None else log_id,
                    mode,
                    event.run_id,
                    KEEP_SECONDS,
                    OP_MARK_SECONDS,
                ],
            )
            if entry_id:
                self._wrote = max(self._wrote, _seq_of(str(entry_id)))

        self._last_op = self._hub.enqueue(append)
        claim = self._claims.pop(event.run_id, None) if event.stage in _FINAL else None
        if claim is not None and event.stage != "completed":
            # The run ends without a sync made: the connection may sync again at once.
            self._note(claim[0], claim[1], "release")

    def _note_manual(self, connection_id: int, at: float, *, at_least: bool = False) -> None:
        for run_id in [r for r, c in self._claims.items() if c[0] == connection_id]:
            del self._claims[run_id]
        self._note(connection_id, repr(at), "max" if at_least else "set")

    def _note(self, connection_id: int, at: str, mode: str) -> None:
        async def note() -> None:
            await self._hub.note_script(
                keys=[self._cooldown],
                args=[connection_id, at, mode, KEEP_SECONDS, at],
            )

        self._last_op = self._hub.enqueue(note)

    async def claim_manual(self, run_id: str) -> float:
        run = self._runs.get(run_id)
        if run is None:
            return 0.0
        await self.flush()
        now = repr(self._clock())
        try:
            left = float(
                await self._hub.claim_script(
                    keys=[self._cooldown],
                    args=[run.connection_id, now, COOLDOWN_SECONDS, KEEP_SECONDS],
                )
            )
        except TRANSIENT as exc:
            # The API keeps its own cooldown: without Redis, let it decide.
            self._hub.lost(exc)
            return 0.0
        if left <= 0:
            self._claims[run_id] = (run.connection_id, now)
        return left

    async def flush(self) -> None:
        await self._hub.wait_written(self._last_op)

    # --- what other replicas wrote -------------------------------------------------------

    def receive(self, seq: int, text: str) -> None:
        """An event from the stream (any replica's, this one's too): to the listeners,
        once each, in order."""
        if seq <= self._delivered:
            return
        self._delivered = seq
        event = _decode(seq, text)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one bad listener must not starve the others
                logger.exception("sync listener raised; continuing")

    async def catch_up(self, since: int) -> None:
        """Hand the listeners what was appended while this process heard nothing: after
        the last event they got, or else after `since` (0: nothing to catch up)."""
        start = self._delivered or since
        if not self._listeners or start <= 0:
            return
        for seq, text in await self._entries_after(start):
            self.receive(seq, text)

    # --- reading -------------------------------------------------------------------------

    async def _read(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except TRANSIENT as exc:
            self._hub.lost(exc)
            raise SyncUnavailable() from None

    async def _entries_after(self, seq: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        start = f"({_id_of(seq)}" if seq > 0 else "-"
        while True:
            page = await self._read(
                self._hub.redis.xrange(self._stream, min=start, max="+", count=PAGE)
            )
            out.extend((_seq_of(entry_id), data["e"]) for entry_id, data in page)
            if len(page) < PAGE:
                return out
            start = f"({page[-1][0]}"

    async def _newest_first(self, enough: Callable[[SyncEvent], bool]) -> None:
        """Events from the newest back, retained ones only, until `enough` says so."""
        cutoff = self._clock() - EVENT_TTL_SECONDS
        oldest_kept = int(cutoff * 1000) * 1000
        end = "+"
        seen = 0
        while seen < self._max_events:
            page = await self._read(
                self._hub.redis.xrevrange(self._stream, max=end, min="-", count=PAGE)
            )
            for entry_id, data in page:
                seq = _seq_of(entry_id)
                seen += 1
                if seq < oldest_kept or seen > self._max_events:
                    return
                event = _decode(seq, data["e"])
                if event.at >= cutoff and enough(event):
                    return
            if len(page) < PAGE:
                return
            end = f"({page[-1][0]}"

    async def events(self, limit: int = 50) -> list[SyncEvent]:
        await self.flush()
        out: list[SyncEvent] = []

        def take(event: SyncEvent) -> bool:
            out.append(event)
            return len(out) >= limit

        if limit > 0:
            await self._newest_first(take)
        return out

    def knows_seq(self, seq: int) -> bool:
        # The history is Redis's, kept across restarts and shared by replicas, its ids on
        # Redis's clock: any id is one it may have given out.
        return True

    async def events_after(self, seq: int) -> list[SyncEvent]:
        await self.flush()
        cutoff = self._clock() - EVENT_TTL_SECONDS
        kept = await self.events(self._max_events) if seq <= 0 else None
        if kept is not None:
            return list(reversed(kept))
        events = [_decode(s, text) for s, text in await self._entries_after(seq)]
        return [e for e in events if e.at >= cutoff][-self._max_events :]

    async def runs(self, limit: int = 20) -> list[SyncEvent]:
        await self.flush()
        seen: set[str] = set()
        out: list[SyncEvent] = []
        cutoff = self._clock() - EVENT_TTL_SECONDS

        def take(event: SyncEvent) -> bool:
            # The newest event of each run comes first; a run whose newest is older than
            # the retention is not shown (its older events are older still).
            if event.run_id not in seen:
                seen.add(event.run_id)
                if event.at >= cutoff:
                    out.append(event)
            return len(out) >= limit

        await self._newest_first(take)
        return out

    async def cooldown_left(self, connection_id: int) -> float:
        await self.flush()
        raw = await self._read(self._hub.redis.hget(self._cooldown, str(connection_id)))
        if raw is None:
            return 0.0
        left = COOLDOWN_SECONDS - (self._clock() - float(raw))
        return max(0.0, left) if math.isfinite(left) else 0.0


class RedisPrincipalBus(PrincipalBus):
    """The subscription bus through Redis pub/sub: `publish` and `publish_to` reach the
    listen streams on every replica (still only the principal's, for `publish_to`); each
    replica hands the messages it hears to its own listeners. With Redis away, this
    replica's listeners still get what it publishes."""

    def __init__(self, hub: RedisSync) -> None:
        super().__init__()
        self._hub = hub

    async def publish(self, event: ServerEvent) -> None:
        await self._send(None, event)

    async def publish_to(self, principal: str, event: ServerEvent) -> None:
        await self._send(principal, event)

    async def _send(self, principal: str | None, event: ServerEvent) -> None:
        message = {
            "p": principal,
            "m": event_to_notification(event, {}).method,
            "u": getattr(event, "uri", None),
        }
        try:
            await self._hub.redis.publish(self._hub.bus_channel, json.dumps(message))
        except TRANSIENT as exc:
            self._hub.lost(exc)
            self._deliver(event, _for(principal))
        await anyio.lowlevel.checkpoint()

    def receive(self, payload: str) -> None:
        data = json.loads(payload)
        uri = data.get("u")
        event = event_from_wire(str(data["m"]), {"uri": uri} if uri is not None else None)
        if event is not None:
            principal = data.get("p")
            self._deliver(event, _for(principal if isinstance(principal, str) else None))


def _for(principal: str | None) -> Callable[[str | None], bool]:
    """Which listeners an event published to `principal` (None: to everyone) is for."""
    if principal is None:
        return lambda owner: True
    return lambda owner: owner == principal
