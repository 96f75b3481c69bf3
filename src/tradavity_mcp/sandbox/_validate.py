"""Server-side validation, written from the API reference independently of the client's
models (so the contract tests compare two readings of the reference, not one with itself).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ApiError",
    "Check",
    "Invalid",
    "boolean",
    "check_body",
    "day",
    "dt",
    "enum",
    "integer",
    "num",
    "obj",
    "string",
    "text_bytes",
]


class ApiError(Exception):
    """An error envelope: HTTP status, stable code, message, details.

    Raised from a handler it rolls back the handler's writes, unless `keep_writes` is set
    (a failure the platform records, such as a failed sync's log row and cooldown stamp);
    either way the error is never cached for idempotent replays.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        keep_writes: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        self.keep_writes = keep_writes


class Invalid(ApiError):
    """400 validation_error with `details.fields`."""

    def __init__(
        self, fields: Mapping[str, str], message: str | None = None, **details: Any
    ) -> None:
        first = next(iter(fields.items()), ("body", "is invalid"))
        super().__init__(
            400,
            "validation_error",
            message or f"{first[0]} {first[1]}.",
            {"fields": dict(fields), **details} if fields else details,
        )


Check = Callable[[Any], Any]


def _reject(reason: str) -> ValueError:
    return ValueError(reason)


def num(
    lo: float | None = None,
    hi: float | None = None,
    *,
    gt: float | None = None,
    nullable: bool = False,
) -> Check:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or value is None:
            raise _reject("must be a number")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*", value):
                raise _reject("must be a number")
            value = float(value)
        if not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
            raise _reject("must be a number")
        if gt is not None and not value > gt:
            raise _reject(f"must be greater than {gt:g}")
        if lo is not None and value < lo:
            raise _reject(f"must be at least {lo:g}")
        if hi is not None and value > hi:
            raise _reject(f"must be at most {hi:,.2f}")
        return float(value)

    return check


def integer(lo: int | None = None, hi: int | None = None, *, nullable: bool = False) -> Check:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or value is None:
            raise _reject("must be an integer")
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise _reject("must be an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _reject(f"must be an integer {lo}-{hi}" if hi is not None else f"must be >= {lo}")
        return value

    return check


#: A TEXT column holds 65,535 bytes of UTF-8, whatever the number of characters.
TEXT_BYTES = 65535


def string(min_len: int = 0, max_len: int | None = None, *, nullable: bool = True) -> Check:
    """A string of `min_len`..`max_len` characters; without `max_len`, a TEXT column's
    65,535 bytes of UTF-8."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise _reject("must be a string")
        if len(value) < min_len:
            raise _reject("must not be empty" if min_len == 1 else f"needs {min_len}+ characters")
        if max_len is not None and len(value) > max_len:
            raise _reject(f"must be at most {max_len} characters")
        if max_len is None and len(value.encode("utf-8")) > TEXT_BYTES:
            raise _reject(f"must be at most {TEXT_BYTES} bytes")
        return value

    return check


def text_bytes(max_bytes: int, *, nullable: bool = True) -> Check:
    """A string capped in UTF-8 bytes rather than characters."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise _reject("must be a string")
        if len(value.encode("utf-8")) > max_bytes:
            raise _reject(f"must be at most {max_bytes:,} bytes (UTF-8)")
        return value

    return check


def enum(allowed: tuple[str, ...], *, nullable: bool = True) -> Check:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if value not in allowed:
            raise _reject(f"must be one of: {', '.join(allowed)}")
        return value

    return check


def dt(*, nullable: bool = False) -> Check:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise _reject("must be an ISO 8601 datetime")
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
            else:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
        except ValueError:
            raise _reject("must be an ISO 8601 datetime") from None
        return moment.astimezone(UTC)

    return check


def boolean(*, nullable: bool = False) -> Check:
    """JSON true/false; "true"/"false"/"1"/"0" strings and 0/1 are accepted too."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
            return value.strip().lower() in {"true", "1"}
        raise _reject("must be true or false")

    return check


def day(*, nullable: bool = False) -> Check:
    """A `YYYY-MM-DD` date between 2000-01-01 and 2100-12-31, returned as text."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise _reject("must be a YYYY-MM-DD date")
        try:
            parsed = datetime.strptime(value.strip(), "%Y-%m-%d")
        except ValueError:
            raise _reject("must be a valid YYYY-MM-DD date") from None
        if not 2000 <= parsed.year <= 2100:
            raise _reject("must be between 2000-01-01 and 2100-12-31")
        return value.strip()

    return check


def obj(*, nullable: bool = True) -> Check:
    """A free-form JSON object, stored as sent."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            raise _reject("must be a JSON object")
        return value

    return check


def strip_nul(value: Any) -> Any:
    """NUL characters are silently removed from every string, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


def check_body(
    body: Any, spec: Mapping[str, Check], *, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate a JSON object against an allow-list; every problem is reported at once."""
    if not isinstance(body, dict):
        raise Invalid({"body": "must be a JSON object"})
    body = strip_nul(body)
    problems: dict[str, str] = {}
    for name in body:
        if name not in spec:
            problems[name] = "is not a known field"
    for name in required:
        if name not in body or body[name] is None:
            problems.setdefault(name, "is required")
    out: dict[str, Any] = {}
    for name, check in spec.items():
        if name in body and name not in problems:
            try:
                out[name] = check(body[name])
            except ValueError as exc:
                problems[name] = str(exc)
    if problems:
        raise Invalid(problems)
    return out
