"""Exactly-once tool calls: identity, claims, leases, steps and outcomes.

Every journaling tool runs as a `WriteCall` (see the README's "Exactly once" table):

1. **Identity.** A host tool-use id in `_meta` (`claudecode/toolUseId`,
   `vscode.requestId`, `callId`) or a top-level `callId`, else our documented
   `com.tradavity/callId`. With one, the same call again is replayed forever and the
   same id with other arguments is refused. Without one, a call is named afresh.
2. **What kind of write.** A state-setting tool (`update_trade`, `tag_trade`,
   `archive_trade`, `trigger_sync`) applies every invocation. A creating tool
   (`create_trade`, `journal_trade`, `attach_screenshot`, `record_protocol_response`)
   answers an identical call inside the duplicate window with the first one's outcome
   (`suspected_duplicate`), unless `allow_duplicate` is set.
3. **Atomic.** `Ledger.claim` decides in one transaction; the worker that runs a call
   holds a lease, and an identical call waits for it, however long it takes. An
   identical call whose twin is pending and unattended finishes the twin (same keys,
   same requests) instead of writing anew.
4. **Resolve once.** Each HTTP write is a step whose resolved request (`now` turned into
   a time, names into ids) is recorded with its idempotency key before it is sent;
   every retry and resume sends that request under that key.
5. **Past the API's 24 h replay window** a step with an unknown outcome is looked for
   (`find`) and adopted if found; it is never re-sent blindly.
6. **An end.** A call still pending `PENDING_LIMIT_SECONDS` after it was made is stopped
   at its next attempt: recorded as failed, with what was written and what never was
   confirmed, and nothing more is sent for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, TypeVar

import anyio

from ...api.clock import Now
from ...api.errors import (
    APIConnectionError,
    APIStatusError,
    TradavityError,
)
from ...api.idempotency import derive_key
from ..errors import StepFailed, UserError, describe_error, one_error
from .ledger import (
    CallDraft,
    CallRecord,
    LedgerUnavailable,
    StepRecord,
    Unrecorded,
    canonical_json,
    digest_arguments,
)
from .offload import AsyncLedger

__all__ = [
    "CALL_ID_META_KEY",
    "DUPLICATE_WINDOW_SECONDS",
    "HOST_CALL_ID_KEYS",
    "PENDING_LIMIT_SECONDS",
    "REPLAY_WINDOW_SECONDS",
    "CallId",
    "NotYet",
    "Pending",
    "WriteCall",
    "WriteKind",
    "resolve_call_id",
]

logger = logging.getLogger("tradavity_mcp.calls")

T = TypeVar("T")

#: Our documented `_meta` key for programmatic agents (a voice-note pipeline passes its
#: note id here so re-sending the same note never journals twice).
CALL_ID_META_KEY = "com.tradavity/callId"
#: Tool-use ids that known hosts put in `_meta`, in order of preference.
HOST_CALL_ID_KEYS = ("claudecode/toolUseId", "vscode.requestId", "callId")
#: An identical creating call this recent is taken for the same intent (a host that
#: dispatched one call twice, a model that repeated itself). `TRADAVITY_DUPLICATE_WINDOW`.
DUPLICATE_WINDOW_SECONDS = 600.0
#: The API keeps idempotent responses for 24 h; past that a re-send could write again.
REPLAY_WINDOW_SECONDS = 23.5 * 3600
#: How long a worker's claim on a call lasts without renewal, and how often it renews.
LEASE_SECONDS = 60.0
#: A call Tradavity has not confirmed for this long after it was made is stopped at its
#: next attempt (three days: a long outage, a weekend; well past the replay window, so a
#: step sent but never confirmed was looked for, `find`, whenever the API answered).
PENDING_LIMIT_SECONDS = 72 * 3600.0

#: creates: a new journal entry each time (duplicates are held back);
#: sets: puts something into a state (every invocation is applied, in order).
WriteKind = Literal["creates", "sets"]


class Pending(Exception):
    """The outcome of a write is unknown (or the API is unreachable): it will be finished."""

    def __init__(self, step: str, reason: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason
        #: What the caller should see beside the reason (an upload link, say).
        self.extra = dict(extra or {})


class NotYet(Exception):
    """The call did nothing yet, for a reason the caller should hear (a cooldown).

    Its result is returned, but the call is not recorded as done, so calling again
    really tries again.
    """

    def __init__(self, outcome: str, result: dict[str, Any]) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.result = result


@dataclass(frozen=True)
class CallId:
    value: str
    source: Literal["host", "meta", "none"]


def resolve_call_id(
    meta: Mapping[str, Any] | None, params: Mapping[str, Any] | None = None
) -> CallId | None:
    """The call's identity: a host tool-use id, else our `_meta` key; None without one."""
    meta = meta or {}
    candidates = [(key, meta.get(key)) for key in HOST_CALL_ID_KEYS]
    candidates.append(("callId", (params or {}).get("callId")))
    for key, value in candidates:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return CallId(f"host:{key}:{value}", "host")
    value = meta.get(CALL_ID_META_KEY)
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return CallId(f"meta:{value}", "meta")
    return None


@dataclass
class _Lease:
    """A worker's hold on a call while its body runs."""

    given_back: bool = False
    #: The body is done and its end is being recorded (which ends the lease).
    ending: bool = False


@dataclass
class WriteCall:
    """One journaling tool call against the ledger. Use `run()` from the tool adapter.

    `arguments` are the call's canonical arguments (what identifies it); `stored` is
    what the ledger keeps of them once the call is finished (no screenshot bytes).
    """

    ledger: AsyncLedger
    principal: str
    tool: str
    call_id: CallId
    arguments: dict[str, Any]
    clock: Now
    kind: WriteKind = "creates"
    stored: dict[str, Any] | None = None
    #: Files the call uploads, kept by the ledger only while it is unfinished; in
    #: `recorded`, each stands as "blob:<digest>".
    blobs: dict[str, bytes] = field(default_factory=dict)
    recorded: dict[str, Any] | None = None
    #: journal_trade: the trade part's digest, to continue a partial or pending call.
    trade_digest: str | None = None
    #: sets: what it sets ("trade:42"), so earlier pending calls are finished first.
    target: str | None = None
    duplicate_window: float = DUPLICATE_WINDOW_SECONDS
    lease_seconds: float = LEASE_SECONDS
    pending_limit: float = PENDING_LIMIT_SECONDS
    #: When the call was made, as its ledger record says (set by `run` once claimed): the
    #: moment `now` in its arguments stands for, however late a step runs.
    made_at: float | None = None

    @property
    def _id(self) -> tuple[str, str, str]:
        return (self.principal, self.tool, self.call_id.value)

    @cached_property
    def args_digest(self) -> str:
        """The arguments' digest (computed once: with a screenshot's base64 in them it
        takes tens of ms, so `table` computes it off the event loop)."""
        return digest_arguments(self.arguments)

    def _draft(self) -> CallDraft:
        recorded = self.recorded if self.recorded is not None else self.arguments
        return CallDraft(
            principal=self.principal,
            tool=self.tool,
            call_id=self.call_id.value,
            args_digest=self.args_digest,
            args_json=canonical_json(recorded),
            id_source=self.call_id.source,
            trade_digest=self.trade_digest,
            target=self.target,
            blobs=self.blobs,
        )

    def key(self, step: str) -> str:
        return derive_key(self.principal, self.call_id.value, self.tool, step)

    # --- steps ---------------------------------------------------------------------------

    async def step(self, name: str, send: Callable[[str], Awaitable[T]]) -> T:
        """Run one write step at most once; `send(key)` returns the JSON-able result."""

        async def send_request(key: str, request: Any) -> T:
            return await send(key)

        return await self.write(name, send_request)

    async def write(
        self,
        name: str,
        send: Callable[[str, Any], Awaitable[T]],
        *,
        build: Callable[[], Awaitable[Any]] | None = None,
        find: Callable[[Any], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run one write step at most once.

        `build()` resolves the request (names to ids, `now` to a time) the first time;
        it is recorded with the key before anything is sent, and `send(key, request)`
        always gets the recorded one. `find(request)` looks for the write's effect
        when the API can no longer tell (past its 24 h replay window).
        """
        record = await self.ledger.get_step(*self._id, name)
        if record is not None and record.state == "done":
            return record.result  # type: ignore[no-any-return]
        if record is not None and record.state == "failed":
            raise StepFailed(name, UserError(record.error or f"step {name} failed"))
        if record is None:
            request = await self._build(name, build)
            record = await self.ledger.mark_step_sent(*self._id, name, self.key(name), request)
        elif self.clock() - record.first_sent > REPLAY_WINDOW_SECONDS:
            record = await self._past_replay_window(name, record.request, record.first_sent, find)
            if record.state == "done":
                return record.result  # type: ignore[no-any-return]
        looked = False
        while True:
            try:
                result = await send(record.idem_key, record.request)
            except APIConnectionError as exc:
                raise Pending(name, exc.message) from None
            except APIStatusError as exc:
                if exc.retryable and exc.replayed and find is not None and not looked:
                    # The API answers this key from its replay cache with the error it
                    # cached (the reference does not say errors are not cached): every
                    # retry for 24 h would replay it. Look for the write now, as past the
                    # window, and write it under a key of its own if it is not there.
                    logger.info("%s: step %s met a replayed error; looking now", self.tool, name)
                    looked = True
                    record = await self._past_replay_window(
                        name, record.request, record.first_sent, find
                    )
                    if record.state == "done":
                        return record.result  # type: ignore[no-any-return]
                    continue
                if exc.retryable:
                    # Still failing after the client's retries (5xx, rate limit): keep the
                    # write pending and finish it later with the same key.
                    raise Pending(name, str(exc)) from None
                await self.ledger.fail_step(*self._id, name, describe_error(exc))
                raise StepFailed(name, exc) from None
            except (TradavityError, UserError) as exc:
                await self.ledger.fail_step(*self._id, name, describe_error(exc))
                raise StepFailed(name, exc) from None
            try:
                await self.ledger.finish_step(*self._id, name, result)
            except LedgerUnavailable as exc:
                raise Unrecorded(exc, name, result) from None
            return result

    @staticmethod
    async def _build(name: str, build: Callable[[], Awaitable[Any]] | None) -> Any:
        """The step's request. A read it needs that is refused (a list we cannot read, a
        404) fails the step, and one still failing after retries (a 500) holds it, as a
        failed send would; nothing was sent, nothing recorded. No answer at all is left
        to the call: pending at its lookups, finished once the API is back."""
        if build is None:
            return None
        try:
            return await build()
        except APIConnectionError:
            raise
        except APIStatusError as exc:
            if exc.retryable:
                raise Pending(name, str(exc)) from None
            raise StepFailed(name, exc) from None
        except TradavityError as exc:
            raise StepFailed(name, exc) from None

    async def _past_replay_window(
        self,
        name: str,
        request: Any,
        first_sent: float,
        find: Callable[[Any], Awaitable[Any]] | None,
    ) -> StepRecord:
        """The first attempt is older than the API remembers: look before writing."""
        if find is None:
            message = (
                f"step '{name}' was sent over 24 hours ago and Tradavity never confirmed it; "
                "it is not sent again. Check the trade in Tradavity and repeat the change if "
                "it is missing."
            )
            await self.ledger.fail_step(*self._id, name, message)
            raise StepFailed(name, UserError(message))
        try:
            found = await find(request)
        except APIConnectionError as exc:
            raise Pending(name, exc.message) from None
        if found is not None:
            logger.info("%s: step %s found in Tradavity after the replay window", self.tool, name)
            await self.ledger.finish_step(*self._id, name, found)
            adopted = await self.ledger.get_step(*self._id, name)
            assert adopted is not None
            return adopted
        # Looked, and it is not there: write it now, under a key of its own.
        attempt = f"{name}@{math.floor(first_sent)}"
        return await self.ledger.mark_step_sent(
            *self._id, name, self.key(attempt), request, resend=True
        )

    async def completed_steps(self) -> list[str]:
        return [s.step for s in await self.ledger.steps(*self._id) if s.state == "done"]

    async def _written_anything(self) -> bool:
        return any(s.state in ("done", "pending") for s in await self.ledger.steps(*self._id))

    # --- the call ------------------------------------------------------------------------

    async def run(
        self,
        body: Callable[[WriteCall], Awaitable[dict[str, Any]]],
        *,
        allow_duplicate: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """Run (or replay, or resume, or answer from a twin). Returns (outcome, result)."""
        owner = self.ledger.new_owner()
        creates = self.kind == "creates" and not allow_duplicate
        while True:
            claim = await self.ledger.claim(
                self._draft(),
                owner=owner,
                lease_seconds=self.lease_seconds,
                window=self.duplicate_window if creates else None,
            )
            record = claim.record
            match claim.kind:
                case "mismatch":
                    raise UserError(
                        f"this call id was already used for a {self.tool} call with other "
                        "arguments; a retry must repeat the original arguments exactly "
                        "(or use a new call id for a new write)"
                    )
                case "replay":
                    return "replayed", record.result or {}
                case "failed":
                    raise UserError(str((record.result or {}).get("error", "this call failed")))
                case "busy":
                    await self._wait_for(record)
                case "twin":
                    if record.state == "pending" and await self.ledger.lease_alive(record):
                        await self._wait_for(record)
                        continue
                    return await self._answer_from_twin(record, body)
                case "new" | "resume" | "continue":
                    # A call carried on was made when the call it carries on was.
                    self.made_at = (claim.previous or record).created_at
                    return await self._execute(body, owner)

    async def _answer_from_twin(
        self, twin: CallRecord, body: Callable[[WriteCall], Awaitable[dict[str, Any]]]
    ) -> tuple[str, dict[str, Any]]:
        """An identical call answers for this one; nothing new is written."""
        result = dict(twin.result or {})
        result["twin_created_at"] = twin.created_at
        if twin.state == "done":
            return "suspected_duplicate", result
        # The twin is pending and nobody is working on it (its server stopped, or the API
        # was down): finish it, under its own keys and requests. This never writes twice.
        source: Any = twin.id_source
        first = replace(self, call_id=CallId(twin.call_id, source))
        outcome, data = await first.run(body)
        data = {**data, "twin_created_at": twin.created_at}
        return ("pending" if outcome == "pending" else "suspected_duplicate"), data

    async def _wait_for(self, record: CallRecord) -> None:
        """Wait while another worker holds `record` (in this process or another)."""
        delay = 0.005
        while True:
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.2)
            now = await self.ledger.get_call(record.principal, record.tool, record.call_id)
            if now is None or now.state != "pending" or not await self.ledger.lease_alive(now):
                return

    @asynccontextmanager
    async def _leased(self, owner: str) -> AsyncIterator[_Lease]:
        """Hold the call's lease while its body runs; give it back however it ends
        (unless the call's end, recorded, gave it back already)."""
        lease = _Lease()

        async def renew() -> None:
            while True:
                await anyio.sleep(self.lease_seconds / 4)
                held = await self.ledger.renew(*self._id, owner, self.lease_seconds)
                if not held and not lease.ending:
                    # Taken over (the lease ran out while the store could not renew it):
                    # the body stops here, and the worker holding it now finishes it.
                    raise Pending("lease", "another worker took this call over")

        try:
            # The renewer fails only when the lease is lost; a group holds one error.
            with one_error():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(renew)
                    try:
                        yield lease
                    finally:
                        tg.cancel_scope.cancel()
        finally:
            # Shielded (`AsyncLedger.release`): runs even when the call is being cancelled.
            try:
                if not lease.given_back:
                    await self.ledger.release(*self._id, owner)
            except LedgerUnavailable:
                # This process knows the worker is gone: a retry here need not wait out
                # the lease (another process waits until it runs out).
                self.ledger.worker_ended(owner)
                logger.warning("%s: could not release the call's lease", self.tool)

    async def _execute(
        self, body: Callable[[WriteCall], Awaitable[dict[str, Any]]], owner: str
    ) -> tuple[str, dict[str, Any]]:
        try:
            async with self._leased(owner) as lease:
                result = await body(self)
                lease.ending = True
                # Recorded while the lease is still held: given back first, the call would
                # stand pending and unowned for a moment, and a worker waiting for it (on
                # another replica) would resume it and answer "done" instead of "replayed".
                await self._finish_done(result)
                # `finish_call` cleared the owner and expiry in the same transaction (and a
                # renewal matches its owner only): nothing is left to give back.
                lease.given_back = True
        except Pending as exc:
            logger.warning("%s: step %s pending: %s", self.tool, exc.step, exc.reason)
            await self._stop_if_overdue()
            return "pending", {"pending_step": exc.step, "reason": exc.reason, **exc.extra}
        except APIConnectionError as exc:
            # The API went away before the first write (while resolving names): the
            # call is kept and finished once it is back, like any other pending write.
            logger.warning("%s: Tradavity unreachable; call kept pending", self.tool)
            await self._stop_if_overdue()
            return "pending", {"pending_step": "lookup", "reason": exc.message}
        except NotYet as exc:
            if not await self._written_anything():
                await self.ledger.forget_call(*self._id)
            return exc.outcome, exc.result
        except (StepFailed, UserError, TradavityError) as exc:
            if not await self._written_anything():
                # Nothing was written: forget the call so a corrected retry is fresh.
                await self.ledger.forget_call(*self._id)
            else:
                await self.ledger.finish_call(
                    *self._id,
                    state="failed",
                    result={"error": describe_error(exc)},
                    stored_args=self.stored,
                )
            raise
        return "done", result

    async def _stop_if_overdue(self) -> None:
        """A call pending past `pending_limit` ends here: recorded as failed, with what
        was written and what never was confirmed (forgotten if nothing was sent), and
        never sent again. Raises `UserError` with those words."""
        if self.made_at is None or self.clock() - self.made_at < self.pending_limit:
            return
        steps = await self.ledger.steps(*self._id)
        message = _overdue_text(self.tool, self.pending_limit, steps)
        logger.warning("%s: stopped after %.0f h pending", self.tool, self.pending_limit / 3600)
        if any(s.state in ("done", "pending") for s in steps):
            await self.ledger.finish_call(
                *self._id, state="failed", result={"error": message}, stored_args=self.stored
            )
        else:
            await self.ledger.forget_call(*self._id)
        raise UserError(message)

    async def _finish_done(self, result: dict[str, Any]) -> None:
        # Recorded "partial" (so a journal_trade of the same trade carries on from it):
        # a part failed, or its checklist is a draft waiting for the trader's answers.
        steps = result.get("steps")
        partial = isinstance(steps, dict) and any(
            str(v).startswith(("failed", "draft")) for v in steps.values()
        )
        await self.ledger.finish_call(
            *self._id,
            state="done",
            outcome="partial" if partial else "done",
            result=result,
            stored_args=self.stored,
        )


def _step_name(step: StepRecord) -> str:
    """A step as the user knows it: its name, and the trade it created, if it did."""
    number = step.result.get("trade_number") if isinstance(step.result, dict) else None
    return f"{step.step} (trade #{number})" if number is not None else step.step


def _overdue_text(tool: str, limit: float, steps: list[StepRecord]) -> str:
    written = [_step_name(s) for s in steps if s.state == "done"]
    unsure = [s.step for s in steps if s.state == "pending"]
    text = (
        f"Tradavity did not confirm this {tool} call within {limit / 3600:.0f} hours, so it "
        "was stopped: nothing more is sent for it."
    )
    if written:
        text += " Written: " + ", ".join(written) + "."
    if unsure:
        text += (
            " Sent but never confirmed (it may or may not be in Tradavity): "
            + ", ".join(unsure)
            + "."
        )
    if written or unsure:
        return text + " Check the trade in Tradavity and add what is missing."
    return text + " Nothing was written; make the call again once Tradavity answers."
