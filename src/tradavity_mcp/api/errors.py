"""Typed errors for the Tradavity API.

One root (`TradavityError`) and three branches:

* `RequestInvalid`: refused locally, before any HTTP was sent.
* `APIConnectionError`: no answer could be had from the API (after retries).
* `APIStatusError`: the API answered with an error envelope. Its leaves are keyed by
  the envelope's stable `error.code`; an unknown code falls back to the class for
  its HTTP status.

No error ever carries the API key: messages are built only from the API's answer and
our own words, and requests/headers are not kept on the exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "BrokerAPIError",
    "CategoryHasTags",
    "Conflict",
    "ConnectionSyncCooldown",
    "DeadlockRetry",
    "DuplicateName",
    "ForbiddenScope",
    "IdempotencyConflict",
    "InternalError",
    "KeyExpired",
    "KeyRevoked",
    "LimitReached",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "RequestInvalid",
    "RequestTooLarge",
    "SyncFailed",
    "TokenExpired",
    "TradavityError",
    "Unauthorized",
    "UnexpectedShape",
    "ValidationFailed",
    "error_for",
]


class TradavityError(Exception):
    """Root of every error this package raises about the Tradavity API."""


class UnexpectedShape(TradavityError):
    """The API answered, but not in a shape we can read (a list's rows under a name we
    do not know, say). The message names what was found, so the answer is never taken
    for an empty one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestInvalid(TradavityError):
    """A request body failed local validation; nothing was sent.

    `fields` maps each offending field (dotted path) to a short reason.
    """

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})


class APIConnectionError(TradavityError):
    """The API could not be reached, or the connection broke mid-request, on every try.

    `outcome_unknown` is true when a write may have been applied before the connection
    broke: the caller must resolve it by re-sending with the same idempotency key.
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.outcome_unknown = outcome_unknown
        self.attempts = attempts


class APIStatusError(TradavityError):
    """The API answered `ok: false`.

    `retryable`: a transient failure the client retries as its policy allows (a write
    still failing afterwards may be finished later with the same key). `retry_once`: a
    failure worth exactly one more try, then final for this request (a broker sync that
    failed: the reference says to retry later, not in a loop).
    """

    code: ClassVar[str] = ""
    retryable: ClassVar[bool] = False
    retry_once: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = code
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id
        self.retry_after = retry_after
        #: The answer came from the API's replay cache for the request's idempotency key
        #: (its `X-Idempotent-Replay` header, or the same request id as an earlier try):
        #: retrying under that key can only replay it again.
        self.replayed = False

    def __str__(self) -> str:
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status} {self.error_code}: {self.message}{rid}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.error_code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class ValidationFailed(APIStatusError):
    code = "validation_error"

    @property
    def fields(self) -> dict[str, str]:
        raw = self.details.get("fields")
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


class Unauthorized(APIStatusError):
    code = "unauthorized"


class KeyRevoked(Unauthorized):
    code = "key_revoked"


class KeyExpired(Unauthorized):
    code = "key_expired"


class TokenExpired(APIStatusError):
    """Auto-sync: the broker token cannot be renewed; the user must reconnect in settings."""

    code = "token_expired"


class ForbiddenScope(APIStatusError):
    code = "forbidden_scope"

    @property
    def required_scope(self) -> str | None:
        scope = self.details.get("required_scope")
        return str(scope) if scope is not None else None


class NotFound(APIStatusError):
    code = "not_found"


class MethodNotAllowed(APIStatusError):
    code = "method_not_allowed"


class Conflict(APIStatusError):
    """409: the request clashes with what exists (`except Conflict` catches every 409)."""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """The idempotency key was already used with another body. Never retried."""

    code = "idempotency_conflict"


class DuplicateName(Conflict):
    code = "duplicate_name"


class CategoryHasTags(Conflict):
    code = "category_has_tags"


class RequestTooLarge(APIStatusError):
    code = "request_too_large"


class LimitReached(APIStatusError):
    """A plan cap: storage or per-trade screenshots (413) or a subscription cap (429)."""

    code = "limit_reached"


class RateLimited(APIStatusError):
    code = "rate_limited"
    retryable = True

    @property
    def scope(self) -> str | None:
        scope = self.details.get("scope")
        return str(scope) if scope is not None else None


class ConnectionSyncCooldown(APIStatusError):
    """A manual sync inside the 20 s per-connection cooldown. Not retried automatically."""

    code = "connection_sync_cooldown"

    @property
    def retry_after_seconds(self) -> float:
        raw = self.details.get("retry_after_seconds", self.retry_after)
        try:
            return float(raw) if raw is not None else 20.0
        except (TypeError, ValueError):
            return 20.0


class InternalError(APIStatusError):
    code = "internal_error"
    retryable = True


class SyncFailed(APIStatusError):
    """Manual sync: the sync pipeline failed unexpectedly (500). Retried once, then final."""

    code = "sync_failed"
    retry_once = True


class BrokerAPIError(APIStatusError):
    """Manual sync: the broker's API returned an error (502). Retried once, then final."""

    code = "broker_api_error"
    retry_once = True


class DeadlockRetry(APIStatusError):
    code = "deadlock_retry"
    retryable = True


class _UnknownServerError(APIStatusError):
    """A 5xx without a code we know (e.g. a proxy's 502 page): worth another try."""

    retryable = True


_BY_CODE: dict[str, type[APIStatusError]] = {
    cls.code: cls
    for cls in (
        ValidationFailed,
        Unauthorized,
        KeyRevoked,
        KeyExpired,
        TokenExpired,
        ForbiddenScope,
        NotFound,
        MethodNotAllowed,
        IdempotencyConflict,
        DuplicateName,
        CategoryHasTags,
        Conflict,
        RequestTooLarge,
        LimitReached,
        RateLimited,
        ConnectionSyncCooldown,
        InternalError,
        SyncFailed,
        BrokerAPIError,
        DeadlockRetry,
    )
}

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: ForbiddenScope,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: RequestTooLarge,
    429: RateLimited,
}


def error_for(
    *,
    status: int,
    code: str | None,
    message: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed error for an error envelope: by `error.code`, else by HTTP status."""
    cls = _BY_CODE.get(code or "")
    if cls is None:
        cls = _BY_STATUS.get(status, _UnknownServerError if status >= 500 else APIStatusError)
    return cls(
        message,
        status=status,
        code=code or f"http_{status}",
        details=details,
        request_id=request_id,
        retry_after=retry_after,
    )
