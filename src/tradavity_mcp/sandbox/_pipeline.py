"""The conventions every endpoint shares: envelope, auth, scopes, rate limits, faults and
the idempotency contract. Handlers only see a validated, authorized `Ctx`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from ._clock import Clock
from ._faults import FAULT_KINDS, Faults, FaultSpec
from ._seed import hash_key
from ._store import Store
from ._validate import ApiError, Invalid

__all__ = ["Ctx", "Handler", "Pipeline", "RequestRecord", "Result", "Route"]

TIERS = {"free": (60, 5000, 180), "pro": (300, 50000, 900)}
IP_LIMIT = 100
IDEMPOTENCY_TTL = 24 * 3600.0
LEADER_WAIT = 30.0
MAX_JSON = 1024 * 1024
MAX_UPLOAD = 10 * 1024 * 1024
_IDEM_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUERY_KEYS = {"api_key", "apikey", "key", "token", "access_token", "x-api-key"}


@dataclass
class Ctx:
    store: Store
    now: float
    user: dict[str, Any]
    key: dict[str, Any]
    params: dict[str, str]
    body: Any
    files: dict[str, tuple[str, bytes, str]]
    form: dict[str, str]
    path: dict[str, str]
    state: Any

    @property
    def uid(self) -> int:
        return int(self.user["user_id"])

    @property
    def scopes(self) -> set[str]:
        return set(self.key["scopes"])

    @property
    def tz(self) -> str:
        return str(self.user["timezone"])

    @property
    def pro(self) -> bool:
        return bool(self.user["plan"] == "pro")


@dataclass
class Result:
    status: int = 200
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None
    media_type: str = "application/json"


Handler = Callable[[Ctx], Awaitable[Result]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    scope: str | None


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    error: str | None
    idempotency_key: str | None
    replayed: bool


@dataclass
class _Idem:
    fingerprint: str
    created: float
    done: asyncio.Event
    response: tuple[int, bytes, dict[str, str]] | None = None


class Dropped(Exception):
    """The connection dies after the write committed (the drop fault)."""


class Pipeline:
    def __init__(self, store: Store, clock: Clock, faults: Faults, routes: list[Route]) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults
        self.routes = routes
        self.counters: Counter[str] = Counter()
        self.request_log: list[RequestRecord] = []
        # Per key: (time, path, status) of every authenticated request, for /usage.
        self.usage: dict[int, deque[tuple[float, str, int]]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._idem: dict[tuple[int, str], _Idem] = {}
        for kid, idem_key, fingerprint, created, response in store.load_replays(
            clock.now() - IDEMPOTENCY_TTL
        ):
            done = asyncio.Event()
            done.set()
            self._idem[(kid, idem_key)] = _Idem(fingerprint, created, done, response)

    def set_faults(self, spec: FaultSpec | None) -> None:
        self.faults.spec = spec

    def reset(self) -> None:
        self.counters.clear()
        self.request_log.clear()

    # --- sliding windows ---------------------------------------------------------------

    def _window(self, name: str, span: float, now: float) -> deque[float]:
        hits = self._windows.setdefault(name, deque())
        while hits and hits[0] <= now - span:
            hits.popleft()
        return hits

    def _limit(self, key: dict[str, Any], user: dict[str, Any], now: float) -> dict[str, Any]:
        per_min, per_day, per_user = TIERS[user["plan"]]
        kid, uid = key["key_id"], user["user_id"]
        windows = [
            ("key-daily", self._window(f"d:{kid}", 86400, now), per_day, 86400),
            ("user", self._window(f"u:{uid}", 60, now), per_user, 60),
            ("key", self._window(f"k:{kid}", 60, now), per_min, 60),
        ]
        for scope, hits, limit, span in windows:
            if len(hits) >= limit:
                retry = max(1, math.ceil(hits[0] + span - now))
                raise ApiError(
                    429,
                    "rate_limited",
                    f"Rate limit exceeded ({scope} window).",
                    {"scope": scope, "retry_after_seconds": retry},
                    {
                        "Retry-After": str(retry),
                        "X-RateLimit-Scope": scope,
                        **self._headers(per_min, windows[2][1], now),
                    },
                )
        for _, hits, _, _ in windows:
            hits.append(now)
        key_hits, user_hits = windows[2][1], windows[1][1]
        return {
            "tier": user["plan"],
            "limit": per_min,
            "remaining": per_min - len(key_hits),
            "reset_at": datetime.fromtimestamp(key_hits[-1] + 60, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "user_ceiling": per_user,
            "user_remaining": per_user - len(user_hits),
        }

    @staticmethod
    def _headers(limit: int, hits: deque[float], now: float) -> dict[str, str]:
        newest = hits[-1] if hits else now
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - len(hits))),
            "X-RateLimit-Reset": str(int(newest + 60)),
        }

    # --- the whole request ----------------------------------------------------------------

    async def handle(self, request: Request) -> tuple[int, bytes, dict[str, str], bool, str]:
        """Returns (status, body, headers, drop, media type)."""
        rid = "req_" + os.urandom(8).hex()
        self.counters["requests"] += 1
        idem_key = request.headers.get("idempotency-key")
        replayed = False
        headers: dict[str, str] = {}
        status, body, drop, media = 500, b"", False, "application/json"
        try:
            status, body, headers, drop, replayed, media = await self._handle(request, rid)
        except ApiError as err:
            status = err.status
            body = _dump(
                {
                    "ok": False,
                    "error": {"code": err.code, "message": err.message, "details": err.details},
                    "meta": {"request_id": rid},
                }
            )
            headers = err.headers
            if err.code == "validation_error":
                self.counters["validation_error"] += 1
        code = None
        if status >= 400:
            try:
                code = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
        self.request_log.append(
            RequestRecord(request.method, request.url.path, status, code, idem_key, replayed)
        )
        key_id = getattr(request.state, "key_id", None)
        if key_id is not None:
            self.usage.setdefault(key_id, deque()).append(
                (self.clock.now(), request.url.path, status)
            )
        return status, body, headers, drop, media

    async def _handle(
        self, request: Request, rid: str
    ) -> tuple[int, bytes, dict[str, str], bool, bool, str]:
        now = self.clock.now()
        if _QUERY_KEYS & {k.lower() for k in request.query_params}:
            raise ApiError(
                401,
                "unauthorized",
                "API keys in the query string are rejected: send Authorization: "
                "Bearer <key> or X-API-Key.",
            )
        auth = request.headers.get("authorization", "")
        raw_key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        raw_key = raw_key or request.headers.get("x-api-key", "").strip()
        digest = hash_key(raw_key) if raw_key else None
        key = next((k for k in self.store.all("key") if k["hash"] == digest), None)
        if key is None:
            ip = request.client.host if request.client else "unknown"
            hits = self._window(f"ip:{ip}", 60, now)
            if len(hits) >= IP_LIMIT:
                retry = max(1, math.ceil(hits[0] + 60 - now))
                raise ApiError(
                    429,
                    "rate_limited",
                    "Too many unauthenticated requests.",
                    {"scope": "ip-preauth"},
                    {"Retry-After": str(retry), "X-RateLimit-Scope": "ip-preauth"},
                )
            hits.append(now)
            raise ApiError(401, "unauthorized", "Missing, malformed or invalid API key.")
        if key.get("revoked"):
            raise ApiError(401, "key_revoked", "This API key was revoked.")
        if key.get("expires_at") and key["expires_at"] <= _iso(now):
            raise ApiError(401, "key_expired", "This API key has expired.")
        request.state.key_id = key["key_id"]
        user = self.store.get("user", key["user_id"])
        assert user is not None
        rate = self._limit(key, user, now)
        rate_headers = {
            "X-RateLimit-Limit": str(rate["limit"]),
            "X-RateLimit-Remaining": str(rate["remaining"]),
            "X-RateLimit-Reset": str(
                int(datetime.fromisoformat(rate["reset_at"].replace("Z", "+00:00")).timestamp())
            ),
        }
        try:
            return await self._authorized(request, rid, now, key, user, rate, rate_headers)
        except ApiError as err:
            err.headers = {**rate_headers, **err.headers}
            raise

    async def _authorized(
        self,
        request: Request,
        rid: str,
        now: float,
        key: dict[str, Any],
        user: dict[str, Any],
        rate: dict[str, Any],
        rate_headers: dict[str, str],
    ) -> tuple[int, bytes, dict[str, str], bool, bool, str]:
        spec = self.faults.spec
        if spec is not None and spec.latency_ms:
            await asyncio.sleep(spec.latency_ms / 1000)
        path = request.url.path.removeprefix("/api/v1")
        route, params = self._route(request.method, path)
        # read:catalog is granted to every key, whatever it lists.
        if route.scope and route.scope != "read:catalog" and route.scope not in key["scopes"]:
            raise ApiError(
                403,
                "forbidden_scope",
                f"This key lacks the {route.scope} scope.",
                {"required_scope": route.scope},
            )
        write = request.method in {"POST", "PUT", "PATCH", "DELETE"}
        self._inject_failure()
        body, files, form, fingerprint = await self._body(request)
        idem_key = request.headers.get("idempotency-key") if write else None
        entry: _Idem | None = None
        if idem_key is not None:
            if not _IDEM_KEY.fullmatch(idem_key):
                raise Invalid({"Idempotency-Key": "must be 1-64 characters of [A-Za-z0-9_-]"})
            fingerprint = hashlib.sha256(
                f"{request.method} {path}\n{fingerprint}".encode()
            ).hexdigest()
            cached = await self._idem_lookup(key["key_id"], idem_key, fingerprint, now)
            if cached is not None:
                self.counters["replays"] += 1
                status, body_bytes, headers = cached
                replayed = {**headers, **rate_headers, "X-Idempotent-Replay": "true"}
                return status, body_bytes, replayed, False, True, "application/json"
            entry = _Idem(fingerprint, now, asyncio.Event())
            self._idem[(key["key_id"], idem_key)] = entry
        ctx = Ctx(
            self.store, now, user, key, dict(request.query_params), body, files, form, params, self
        )
        result, payload = await self._commit(route, ctx, rid, rate, entry, (idem_key or ""))
        if write:
            self.counters["writes_committed"] += 1
        drop = write and self.faults.draw("drop_after_commit")
        if drop:
            self.counters["drop_after_commit"] += 1
        headers = {**rate_headers, **result.headers}
        return result.status, payload, headers, drop, False, result.media_type

    def _inject_failure(self) -> None:
        """The faults drawn before a request runs (the drop is drawn after its commit)."""
        for kind in FAULT_KINDS[1:]:
            if self.faults.draw(kind):
                self.counters[kind] += 1
                raise {
                    "error_500": ApiError(500, "internal_error", "Injected server error."),
                    "deadlock_503": ApiError(
                        503, "deadlock_retry", "Deadlock; retry.", {}, {"Retry-After": "1"}
                    ),
                    "rate_limit_429": ApiError(
                        429,
                        "rate_limited",
                        "Injected rate limit.",
                        {"scope": "key"},
                        {"Retry-After": "1", "X-RateLimit-Scope": "key"},
                    ),
                }[kind]

    async def _commit(
        self,
        route: Route,
        ctx: Ctx,
        rid: str,
        rate: dict[str, Any],
        entry: _Idem | None,
        idem_key: str,
    ) -> tuple[Result, bytes]:
        """Run the handler in one transaction; a write's cached answer commits with it."""
        kid = ctx.key["key_id"]
        kept: ApiError | None = None
        payload = b""
        try:
            with self.store.transaction():
                try:
                    result = await route.handler(ctx)
                except ApiError as err:
                    if not err.keep_writes:
                        raise
                    # The handler's writes commit; the answer is still the error (uncached).
                    kept = err
                if kept is None:
                    payload = self._payload(result, rid, rate)
                    if entry is not None:
                        # Cached in the same transaction as the write: both land or neither.
                        entry.response = (result.status, payload, dict(result.headers))
                        self.store.save_replay(
                            kid, idem_key, entry.fingerprint, ctx.now, entry.response
                        )
        except BaseException:
            if entry is not None:
                entry.response = None
                self._idem.pop((kid, idem_key), None)
                entry.done.set()
            raise
        if entry is not None:
            if kept is not None:
                self._idem.pop((kid, idem_key), None)
            entry.done.set()
        if kept is not None:
            raise kept
        return result, payload

    @staticmethod
    def _payload(result: Result, rid: str, rate: dict[str, Any]) -> bytes:
        if result.raw is not None:
            return result.raw
        if result.status == 204:
            return b""
        meta = {"request_id": rid, "rate_limit": rate, **result.meta}
        return _dump({"ok": True, "data": result.data, "meta": meta})

    async def _idem_lookup(
        self, kid: int, idem_key: str, fingerprint: str, now: float
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The cached response for a replay, waiting for a running leader if need be; None
        when this request should run (and become the leader)."""
        deadline = time.monotonic() + LEADER_WAIT
        while True:
            entry = self._idem.get((kid, idem_key))
            if entry is None or now - entry.created >= IDEMPOTENCY_TTL:
                return None
            if entry.fingerprint != fingerprint:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "This Idempotency-Key was used with a different request body.",
                )
            if entry.response is not None:
                return entry.response
            # Another request with this key is running: wait for the leader's answer, then
            # look again (the leader may have failed, leaving the slot to this request).
            try:
                await asyncio.wait_for(entry.done.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise ApiError(
                    409, "conflict", "The original request with this key is still running."
                ) from None

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict()
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here.",
                {"allowed": sorted(set(allowed))},
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, "not_found", "No such endpoint in the API (or in this sandbox).")

    async def _body(
        self, request: Request
    ) -> tuple[Any, dict[str, tuple[str, bytes, str]], dict[str, str], str]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            raw = await request.body()
            if len(raw) > MAX_UPLOAD + 64 * 1024:
                raise ApiError(413, "request_too_large", "Uploads are limited to 10 MB.")
            files: dict[str, tuple[str, bytes, str]] = {}
            fields: dict[str, str] = {}
            async with request.form(max_part_size=MAX_UPLOAD + 1) as form:
                for name, value in form.multi_items():
                    if isinstance(value, str):
                        fields[name] = value.replace("\x00", "")
                    else:
                        data = await value.read()
                        files[name] = (value.filename or "", data, value.content_type or "")
            file_hash = hashlib.sha256(files["file"][1]).hexdigest() if "file" in files else ""
            fp = f"{file_hash}|{fields.get('label', '')}|{fields.get('sort_order', '')}"
            return None, files, fields, fp
        raw = await request.body()
        if len(raw) > MAX_JSON:
            raise ApiError(413, "request_too_large", "JSON bodies are limited to 1 MB.")
        if not raw.strip():
            return None, {}, {}, ""
        try:
            # strict=False: raw control characters (NUL included) inside strings are
            # accepted; NULs are stripped during validation, the rest stored as sent.
            body = json.loads(raw, strict=False)
        except ValueError:
            raise Invalid({"body": "is not valid JSON"}) from None
        return body, {}, {}, json.dumps(body, sort_keys=True, separators=(",", ":"))


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
