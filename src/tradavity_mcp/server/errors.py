"""One failure path from the API to the model.

`TradavityError` (the API client) is wrapped in `StepFailed` when a write step fails
for good; `UserError` is a failure the model can fix. Adapters turn any of them into
the SDK's `ToolError` (or `ResourceError`) once, with `describe_error`'s words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from ..api.errors import (
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
    UnexpectedShape,
    ValidationFailed,
)
from .writes.ledger import LedgerUnavailable

__all__ = [
    "FAILURES",
    "StepFailed",
    "UserError",
    "describe_error",
    "one_error",
    "reported",
]


class UserError(Exception):
    """A failure the model can fix: the message says how. Becomes a `ToolError`."""


class StepFailed(Exception):
    """A step failed for good; it is recorded as failed and not sent again."""

    def __init__(self, step: str, error: TradavityError | UserError) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error


def describe_error(exc: BaseException, *, subject: str = "") -> str:
    """A message for the model: what went wrong and what to do next. Never the key."""
    if isinstance(exc, StepFailed):
        return describe_error(exc.error, subject=subject)
    if isinstance(exc, LedgerUnavailable | UserError):
        return str(exc)
    if isinstance(exc, RequestInvalid):
        return "invalid arguments: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    if isinstance(exc, APIStatusError):
        return _describe_answer(exc, subject)
    if isinstance(exc, APIConnectionError):
        return f"could not reach Tradavity: {exc.message}"
    if isinstance(exc, UnexpectedShape):
        return exc.message
    return "unexpected error"


def _describe_answer(exc: APIStatusError, subject: str) -> str:
    """What an error answer from Tradavity means for the user, and what to do."""
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
        return _describe_refusal(exc)
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
    rid = f" (request {exc.request_id})" if exc.request_id else ""
    return f"Tradavity answered {exc.status} {exc.error_code}: {exc.message}{rid}"


#: The details of a validation refusal worth repeating to the model.
_REFUSAL_DETAILS = (
    "allowed",
    "unknown_tag_ids",
    "unknown_item_ids",
    "missing",
    "item_value_errors",
)


def _describe_refusal(exc: ValidationFailed) -> str:
    parts = [f"Tradavity refused the request: {exc.message}"]
    if exc.fields:
        parts.append("fields: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
    parts += [f"{key}: {exc.details[key]}" for key in _REFUSAL_DETAILS if key in exc.details]
    return ". ".join(parts)


#: Every failure a tool or resource reports to the model in words (anything else is a bug).
FAILURES = (UserError, StepFailed, TradavityError, LedgerUnavailable)


@contextmanager
def reported(kind: type[ToolError | ResourceError] = ToolError) -> Iterator[None]:
    """Turn an anticipated failure into the SDK's error for the model: once, here."""
    try:
        yield
    except FAILURES as exc:
        raise kind(describe_error(exc)) from None


@contextmanager
def one_error() -> Iterator[None]:
    """Around a task group: a group holding one error is re-raised as that error, so the
    callers' `except` clauses see what failed (anyio groups even a single failure)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
