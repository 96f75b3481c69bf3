"""The journaling tools as the ledger sees them: one table, one way in, one resumer.

`WRITES` maps each tool to its typed arguments, the work it does and the scope it
needs. `invoke` runs a live call; `resume_pending` finishes unfinished calls from their
recorded arguments with the same code, so a pending call is finished exactly as it
was started.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import cpu
from ..workspace import Workspace
from . import journal
from .args import (
    ArchiveTradeArgs,
    AttachScreenshotArgs,
    CreateTradeArgs,
    JournalTradeArgs,
    RecordProtocolResponseArgs,
    ScreenshotPart,
    TagTradeArgs,
    TriggerSyncArgs,
    UpdateTradeArgs,
    WriteArgs,
)
from .call import CallId, WriteCall
from .journal import RunEnv
from .ledger import CallRecord

__all__ = [
    "FILE_SECONDS",
    "RETRY_CAP_SECONDS",
    "RETRY_FIRST_SECONDS",
    "WRITES",
    "Backoff",
    "RunEnv",
    "WriteSpec",
    "finish_now",
    "invoke",
    "resume_pending",
]

logger = logging.getLogger("tradavity_mcp.writes")

Body = Callable[[Workspace, WriteCall, Any, RunEnv], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class WriteSpec:
    name: str
    args: type[WriteArgs]
    body: Body
    #: The scope the key needs for the tool to be listed.
    scope: str


def _plain(
    work: Callable[[Workspace, WriteCall, Any], Awaitable[dict[str, Any]]],
) -> Body:
    """A body that needs nothing from where it runs."""

    async def body(ws: Workspace, call: WriteCall, args: Any, env: RunEnv) -> dict[str, Any]:
        return await work(ws, call, args)

    return body


WRITES: dict[str, WriteSpec] = {
    spec.name: spec
    for spec in (
        WriteSpec("create_trade", CreateTradeArgs, _plain(journal.create_trade), "write:trades"),
        WriteSpec("journal_trade", JournalTradeArgs, journal.journal_trade, "write:trades"),
        WriteSpec("update_trade", UpdateTradeArgs, _plain(journal.update_trade), "write:trades"),
        WriteSpec("archive_trade", ArchiveTradeArgs, _plain(journal.archive_trade), "write:trades"),
        WriteSpec("tag_trade", TagTradeArgs, _plain(journal.tag_trade), "write:tags"),
        WriteSpec(
            "attach_screenshot",
            AttachScreenshotArgs,
            journal.attach_screenshot,
            "write:screenshots",
        ),
        WriteSpec(
            "record_protocol_response",
            RecordProtocolResponseArgs,
            _plain(journal.record_protocol_response),
            "write:protocols",
        ),
        WriteSpec("trigger_sync", TriggerSyncArgs, journal.trigger_sync_body, "write:autosync"),
    )
}


#: Seconds the CPU-heavy part of a call that carries a file may take, waiting for a
#: thread included (`cpu.run`); past them it is refused before anything is written.
FILE_SECONDS = 10.0


async def _built(ws: Workspace, tool: str, args: WriteArgs, call_id: CallId) -> WriteCall:
    """`_call`, in a worker thread when the call carries a file's bytes: the file decoded
    twice and digested, and the arguments' digest, take ~70 ms of CPU for 3 MB."""
    shot = args.screenshot if isinstance(args, JournalTradeArgs) else args
    if not (isinstance(shot, ScreenshotPart) and shot.data is not None):
        return _call(ws, tool, args, call_id)

    def build(deadline: cpu.Deadline) -> WriteCall:
        call = _call(ws, tool, args, call_id)
        call.args_digest  # noqa: B018 (computed here, off the loop, and kept for the claim)
        return call

    return await cpu.run(
        build,
        seconds=FILE_SECONDS,
        what="Preparing the file",
        advice="Nothing was written; call again shortly.",
    )


def _call(ws: Workspace, tool: str, args: WriteArgs, call_id: CallId) -> WriteCall:
    recorded, blobs = args.recorded()
    return WriteCall(
        ledger=ws.ledger,
        principal=ws.principal,
        tool=tool,
        call_id=call_id,
        arguments=args.canonical(),
        clock=ws.clock,
        kind=args.KIND,
        stored=args.stored(),
        recorded=recorded,
        blobs=blobs,
        trade_digest=args.trade_digest(),
        target=args.target(),
        duplicate_window=ws.duplicate_window,
    )


async def invoke(
    ws: Workspace,
    spec: WriteSpec,
    args: WriteArgs,
    identity: CallId | None,
    env: RunEnv,
    *,
    allow_duplicate: bool = False,
) -> tuple[str, dict[str, Any], WriteCall]:
    """Run one live tool call. Without an identity the call is named afresh: a
    state-setting tool applies, a creating tool is checked for an identical twin."""
    call = await _built(ws, spec.name, args, identity or CallId(f"none:{uuid.uuid4().hex}", "none"))
    if call.target is not None:
        # Changes to one thing land in the order they were asked for: an earlier change
        # still unfinished goes first, so it cannot land after this one.
        for earlier in await ws.ledger.earlier_pending(
            ws.principal, call.target, ws.clock(), call.call_id.value
        ):
            await _resume_one(ws, earlier.tool, earlier.call_id, earlier.id_source, env)
    outcome, data = await call.run(
        lambda c: spec.body(ws, c, args, env), allow_duplicate=allow_duplicate
    )
    return outcome, data, call


async def _resume_one(
    ws: Workspace, tool: str, call_id: str, id_source: str, env: RunEnv
) -> str | None:
    record = await ws.ledger.get_call(ws.principal, tool, call_id)
    spec = WRITES.get(tool)
    if record is None or spec is None or record.state != "pending":
        return None
    blobs = await ws.ledger.blobs(ws.principal, tool, call_id)
    args = spec.args.from_record(record.arguments, blobs)
    source: Any = id_source
    call = await _built(ws, tool, args, CallId(call_id, source))
    outcome, _ = await call.run(lambda c: spec.body(ws, c, args, env))
    return outcome


#: The resumer's first wait after a try that left a call pending; each further try
#: waits twice as long as the one before, up to `RETRY_CAP_SECONDS`.
RETRY_FIRST_SECONDS = 30.0
RETRY_CAP_SECONDS = 3600.0


@dataclass
class Backoff:
    """When the resumer tries each pending call next: at once when it first sees the
    call (after a restart, too), then, while it stays pending, 30 s later, 1 min, 2 min
    and so on, doubling up to an hour between tries, until the call ends (done, failed,
    or stopped past `call.PENDING_LIMIT_SECONDS`). Kept in memory, by call."""

    first: float = RETRY_FIRST_SECONDS
    cap: float = RETRY_CAP_SECONDS
    #: (principal, tool, call id) -> (tries that left it pending, when it is due).
    _tries: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)

    @staticmethod
    def _key(record: CallRecord) -> tuple[str, str, str]:
        return (record.principal, record.tool, record.call_id)

    def due(self, record: CallRecord, now: float) -> bool:
        tried = self._tries.get(self._key(record))
        return tried is None or now >= tried[1]

    def left_pending(self, record: CallRecord, now: float) -> None:
        tries = self._tries.get(self._key(record), (0, now))[0] + 1
        self._tries[self._key(record)] = (tries, now + min(self.first * 2 ** (tries - 1), self.cap))

    def ended(self, record: CallRecord) -> None:
        self._tries.pop(self._key(record), None)

    def keep_only(self, pending: list[CallRecord]) -> None:
        """Forget the calls no longer pending (finished by a user or another replica)."""
        still = {self._key(r) for r in pending}
        for key in [k for k in self._tries if k not in still]:
            del self._tries[key]


async def resume_pending(
    ws: Workspace,
    env: RunEnv,
    *,
    records: list[CallRecord] | None = None,
    backoff: Backoff | None = None,
) -> int:
    """Drive the unattended pending calls of this workspace (`records`, else all of its
    principal's) to a known outcome, oldest first; with `backoff`, only those due, and
    all of them once one finishes (Tradavity answers again). Returns how many finished."""
    if records is None:
        records = await ws.ledger.pending_calls(ws.principal)
    finished = 0
    for record in records:
        if backoff is not None and not finished and not backoff.due(record, ws.clock()):
            continue
        if await ws.ledger.lease_alive(record):
            continue  # somebody is working on it right now
        try:
            outcome = await _resume_one(ws, record.tool, record.call_id, record.id_source, env)
        except Exception as exc:  # one bad record must not stop the others
            logger.warning("resuming %s %s failed: %s", record.tool, record.call_id[:16], exc)
            outcome = "pending"  # tried again later, as a pending one (the ledger down?)
        if backoff is not None:
            if outcome == "pending":
                backoff.left_pending(record, ws.clock())
            else:
                backoff.ended(record)
        if outcome not in (None, "pending"):
            finished += 1
            logger.info("finished pending %s call", record.tool)
    return finished


async def finish_now(ws: Workspace, tool: str, call_id: str, env: RunEnv) -> str | None:
    """Finish one pending call of this workspace now (an upload just landed for it),
    unless a worker holds it. Its outcome, or None when it was not run."""
    record = await ws.ledger.get_call(ws.principal, tool, call_id)
    if record is None or record.state != "pending" or await ws.ledger.lease_alive(record):
        return None
    return await _resume_one(ws, tool, call_id, record.id_source, env)
