"""Exactly-once tool calls: call ids, the ledger, steps and outcomes.

Every journaling tool runs inside a `WriteCall`:

1. The call is named: a tool-use id the host put in `_meta`, else our documented
   `com.tradavity/callId` key, else a digest of the canonical arguments.
2. The ledger says whether it is new, already done (replay its result, no API
   request), pending (finish it with the same keys) or a reused id with other
   arguments (refuse). A new call whose arguments match one made moments ago under
   another host id is a suspected double dispatch: the first result is returned.
3. Each HTTP write is a named step whose idempotency key is derived from the call,
   recorded as sent before it goes out and as done with its result after.
4. If the API cannot be reached, the call stays pending and is finished later with
   the same keys; the tool says so instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from ..errors import (
    APIConnectionError,
    APIStatusError,
    ConnectionSyncCooldown,
    ForbiddenScope,
    IdempotencyConflict,
    KeyExpired,
    KeyRevoked,
    LimitReached,
    NotFound,
    RateLimited,
    RequestInvalid,
    TokenExpired,
    TradavityError,
    Unauthorized,
    ValidationFailed,
)
from ..idempotency import derive_key
from ..ledger import Ledger, digest_arguments

__all__ = [
    "CALL_ID_META_KEY",
    "HOST_CALL_ID_KEYS",
    "CallId",
    "NotYet",
    "Pending",
    "StepFailed",
    "UserError",
    "WriteCall",
    "describe_error",
    "resolve_call_id",
]

logger = logging.getLogger("tradavity_mcp.calls")

#: Our documented `_meta` key for programmatic agents (a voice-note pipeline passes its
#: note id here so re-sending the same note never journals twice).
CALL_ID_META_KEY = "com.tradavity/callId"
#: Tool-use ids that known hosts put in `_meta`, in order of preference.
HOST_CALL_ID_KEYS = ("claudecode/toolUseId", "vscode.requestId")
#: A new call with the same arguments as one this recent, under another host id, is
#: taken for the host dispatching one tool call twice.
DUPLICATE_WINDOW_SECONDS = 300.0
#: The API keeps idempotent responses for 24 h; past that a re-send could write again.
REPLAY_WINDOW_SECONDS = 23.5 * 3600


class UserError(Exception):
    """A failure the model can fix: the message says how. Becomes a `ToolError`."""


class Pending(Exception):
    """The outcome of a write is unknown (or the API is unreachable): it will be finished."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


class NotYet(Exception):
    """The call did nothing yet, for a reason the caller should hear (a cooldown).

    Its result is returned, but the call is not recorded as done, so calling again
    really tries again.
    """

    def __init__(self, outcome: str, result: dict[str, Any]) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.result = result


class StepFailed(Exception):
    """A step failed for good; the call can be resumed after the cause is fixed."""

    def __init__(self, step: str, error: TradavityError | UserError) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error


@dataclass(frozen=True)
class CallId:
    value: str
    source: Literal["host", "meta", "derived"]


def resolve_call_id(
    meta: Mapping[str, Any] | None,
    principal: str,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    scope: str = "",
) -> CallId:
    """Name a tool call: host tool-use id, else our `_meta` key, else the arguments' digest.

    `scope` narrows a derived id where equal arguments can rightly mean a new write
    (an end-of-day checklist answered the same way on another day).
    """
    meta = meta or {}
    for key in HOST_CALL_ID_KEYS:
        value = meta.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return CallId(f"host:{key}:{value}", "host")
    value = meta.get(CALL_ID_META_KEY)
    if isinstance(value, str | int) and str(value).strip():
        return CallId(f"meta:{value}", "meta")
    return CallId(f"args:{digest_arguments([principal, tool, dict(arguments), scope])}", "derived")


@dataclass
class WriteCall:
    """One journaling tool call against the ledger. Use `run()` from the tool adapter."""

    ledger: Ledger
    principal: str
    tool: str
    call_id: CallId
    arguments: dict[str, Any]
    locks: dict[tuple[str, str, str], anyio.Lock] = field(default_factory=dict)
    now: Callable[[], float] = field(default=lambda: 0.0)

    @property
    def _id(self) -> tuple[str, str, str]:
        return (self.principal, self.tool, self.call_id.value)

    def key(self, step: str) -> str:
        return derive_key(self.principal, self.call_id.value, self.tool, step)

    async def step(self, name: str, send: Callable[[str], Awaitable[Any]]) -> Any:
        """Run one write step at most once; `send(key)` returns the JSON-able result."""
        done = self.ledger.get_step(*self._id, name)
        if done is not None and done.state == "done":
            return done.result
        record = self.ledger.mark_step_sent(*self._id, name, self.key(name))
        if self.now() - record.first_sent > REPLAY_WINDOW_SECONDS:
            raise StepFailed(
                name,
                UserError(
                    f"step '{name}' was sent over 24 hours ago without a confirmed outcome; "
                    "Tradavity no longer remembers it, so it is not re-sent. Check the journal "
                    "and call again with a new call id if it is missing."
                ),
            )
        try:
            result = await send(record.idem_key)
        except APIConnectionError as exc:
            raise Pending(name, exc.message) from None
        except APIStatusError as exc:
            if exc.retryable:
                # Still failing after the client's retries (5xx, rate limit): keep the
                # write pending and finish it later with the same key.
                raise Pending(name, str(exc)) from None
            raise StepFailed(name, exc) from None
        except (TradavityError, UserError) as exc:
            raise StepFailed(name, exc) from None
        self.ledger.finish_step(*self._id, name, result)
        return result

    def completed_steps(self) -> list[str]:
        return [s.step for s in self.ledger.steps(*self._id) if s.state == "done"]

    async def run(
        self,
        body: Callable[[WriteCall], Awaitable[dict[str, Any]]],
        *,
        allow_duplicate: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """Run (or replay, or resume) the call. Returns the outcome and the result."""
        lock = self.locks.setdefault(self._id, anyio.Lock())
        async with lock:
            record, created = self.ledger.begin_call(
                *self._id, self.arguments, id_source=self.call_id.source
            )
            if record.args_digest != digest_arguments(self.arguments):
                raise UserError(
                    f"this call id was already used for a {self.tool} call with other "
                    "arguments; a retry must repeat the original arguments exactly "
                    "(or use a new call id for a new write)"
                )
            if record.state == "done" and record.result is not None:
                return "replayed", record.result
            if created and self.call_id.source != "derived" and not allow_duplicate:
                twin = await self._twin(record.args_digest)
                if twin is not None:
                    self.ledger.finish_call(*self._id, state="done", result=twin)
                    return "suspected_duplicate", twin
            try:
                result = await body(self)
            except Pending as exc:
                logger.warning("%s: step %s pending: %s", self.tool, exc.step, exc.reason)
                return "pending", {"pending_step": exc.step, "reason": exc.reason}
            except APIConnectionError as exc:
                # The API went away before the first write (while resolving names): the
                # call is kept and finished once it is back, like any other pending write.
                logger.warning("%s: Tradavity unreachable; call kept pending", self.tool)
                return "pending", {"pending_step": "lookup", "reason": exc.message}
            except NotYet as exc:
                if not self.completed_steps():
                    self.ledger.forget_call(*self._id)
                return exc.outcome, exc.result
            except (StepFailed, UserError, TradavityError):
                if not self.ledger.steps(*self._id) or not self.completed_steps():
                    # Nothing was written: forget the call so a corrected retry is fresh.
                    self.ledger.forget_call(*self._id)
                raise
            self.ledger.finish_call(*self._id, state="done", result=result)
            return "done", result

    async def _twin(self, digest: str) -> dict[str, Any] | None:
        """A finished call with the same arguments inside the duplicate window."""
        for _ in range(50):
            twin = self.ledger.recent_twin(
                self.principal,
                self.tool,
                digest,
                other_than=self.call_id.value,
                within=DUPLICATE_WINDOW_SECONDS,
            )
            if twin is None:
                return None
            if twin.state == "done" and twin.result is not None:
                return twin.result
            # The twin is still running (two dispatches at once): wait for its result.
            await anyio.sleep(0.1)
        return None


def describe_error(exc: BaseException, *, subject: str = "") -> str:
    """A message for the model: what went wrong and what to do next. Never the key."""
    if isinstance(exc, StepFailed):
        return describe_error(exc.error, subject=subject)
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, RequestInvalid):
        return "invalid arguments: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    if isinstance(exc, ForbiddenScope):
        scope = exc.required_scope or "a scope it lacks"
        return (
            f"the Tradavity API key does not have the '{scope}' scope. Ask the user to "
            "grant it in Tradavity Settings -> API (or use a key that has it)."
        )
    if isinstance(exc, KeyRevoked | KeyExpired | Unauthorized):
        why = {"key_revoked": "was revoked", "key_expired": "has expired"}.get(
            exc.error_code, "was rejected"
        )
        return (
            f"the Tradavity API key {why}. Create a new key in Tradavity Settings -> API "
            "and set TRADAVITY_API_KEY to it."
        )
    if isinstance(exc, TokenExpired):
        return (
            "the broker connection's login has expired and could not be renewed. Ask the "
            "user to reconnect the broker in Tradavity Settings -> Auto-Sync, then sync again."
        )
    if isinstance(exc, NotFound):
        return (
            f"{subject or 'that item'} was not found (it may not exist, be archived, "
            "or belong to another user)."
        )
    if isinstance(exc, ValidationFailed):
        parts = [f"Tradavity refused the request: {exc.message}"]
        if exc.fields:
            parts.append("fields: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
        for key in (
            "allowed",
            "unknown_tag_ids",
            "unknown_item_ids",
            "missing",
            "item_value_errors",
        ):
            if key in exc.details:
                parts.append(f"{key}: {exc.details[key]}")
        return ". ".join(parts)
    if isinstance(exc, LimitReached):
        return f"a plan limit was reached: {exc.message} ({exc.details or 'no details'})"
    if isinstance(exc, ConnectionSyncCooldown):
        return f"this connection synced moments ago; try again in {exc.retry_after_seconds:.0f} s"
    if isinstance(exc, RateLimited):
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after else " later"
        return (
            f"Tradavity's rate limit ({exc.scope or 'key'} window) is exhausted; try again{wait}."
        )
    if isinstance(exc, IdempotencyConflict):
        return (
            "Tradavity saw this write before with different content (for a file, it changed "
            "since the first attempt). Nothing new was written; use a new call id to write it."
        )
    if isinstance(exc, APIStatusError):
        rid = f" (request {exc.request_id})" if exc.request_id else ""
        return f"Tradavity answered {exc.status} {exc.error_code}: {exc.message}{rid}"
    if isinstance(exc, APIConnectionError):
        return f"could not reach Tradavity: {exc.message}"
    return "unexpected error"
