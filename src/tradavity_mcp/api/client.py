"""The async Tradavity API v1 client.

One shared `httpx2.AsyncClient` (made on the first request), one request path
(`TradavityClient.request`) that paces, retries, parses the envelope and raises typed
errors, and thin typed methods over it for the endpoints the server uses.

Every write takes an `idempotency_key` made by the caller once per logical write (see
`tradavity_mcp.api.idempotency`); every retry of that write re-sends the same key, so a
retry after a dropped connection is answered from the API's replay cache instead of
writing twice.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, SecretStr
from pydantic import ValidationError as PydanticValidationError

from .. import __version__
from .clock import Clock, SystemClock
from .contract import missed
from .errors import (
    APIConnectionError,
    APIStatusError,
    ConnectionSyncCooldown,
    RateLimited,
    RequestInvalid,
    UnexpectedShape,
    error_for,
)
from .idempotency import IDEMPOTENCY_KEY_PATTERN, principal_for_key
from .models import (
    SCOPE_PLACES,
    Account,
    AutosyncConnection,
    ConfirmationsReplace,
    Execution,
    ExecutionsReplace,
    Me,
    Protocol,
    ProtocolResponseCreate,
    ProtocolResponsePatch,
    Screenshot,
    Strategy,
    SyncResult,
    Tag,
    TagCategory,
    TagCategoryCreate,
    TagCreate,
    TagsReplace,
    Trade,
    TradeCreate,
    TradePatch,
    TradeRow,
    plain_validation_fields,
)
from .pacing import RateLimitPacer, RateLimitState, SendWindow, parse_rate_limit
from .uploads import prepare_upload

__all__ = ["ApiResponse", "Page", "RetryPolicy", "TradavityClient"]

logger = logging.getLogger("tradavity_mcp.client")

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The reference's largest offset page: 500 for static lists (accounts, tags, ...), 200
#: for high-volume ones (protocol responses, the sync log, balance events, payouts).
STATIC_PAGE_SIZE = 500
HIGH_VOLUME_PAGE_SIZE = 200
#: The longest the shared window may take to date a send that was answered.
_SETTLE_SECONDS = 2.0
#: A list longer than this many pages is taken for a server ignoring `offset`.
_MAX_PAGES = 1000
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one logical request tries.

    Retried: transport failures (a connection dropped after the request went out
    included), 429 `rate_limited`, 503 `deadlock_retry`, 500 `internal_error`, and 5xx
    answers without a known code.
    Retried at most `sync_error_retries` times (once by default): a manual sync's 502
    `broker_api_error` and 500 `sync_failed`, which the reference says to retry later;
    if that retry meets the connection's cooldown, the sync error is raised (its
    `retry_after` set from the cooldown), not the cooldown.
    Never retried: anything else, in particular validation, auth, scope, not-found,
    `limit_reached`, `connection_sync_cooldown` and every 409.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this (the daily window, say) is not waited out: the
    # error goes to the caller with its `retry_after`.
    max_retry_after: float = 60.0
    sync_error_retries: int = 1

    def backoff(self, attempt: int, jitter: float) -> float:
        """Capped exponential backoff with equal jitter; `attempt` counts from 1."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return float(ceiling / 2 + ceiling / 2 * jitter)


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: `data` and `meta` from the envelope."""

    status: int
    data: Any
    meta: Mapping[str, Any] = field(default_factory=dict)
    replayed: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The body as sent (a file the API streams, such as a screenshot, has no envelope).
    content: bytes = b""

    @property
    def request_id(self) -> str | None:
        rid = self.meta.get("request_id")
        return str(rid) if rid is not None else None


@dataclass(frozen=True)
class Page:
    """One page of trades with its cursor."""

    items: list[TradeRow]
    next_cursor: str | None
    has_more: bool


class _KeyAuth(httpx2.Auth):
    """Adds the bearer header at send time; the key lives nowhere else in the client."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_KeyAuth(key='**********')"


def _validate(model: type[_M], body: _M | Mapping[str, Any]) -> _M:
    """Validate a body locally; a failure is `RequestInvalid` naming every bad field."""
    if isinstance(body, model):
        return body
    try:
        return model.model_validate(body)
    except PydanticValidationError as exc:
        fields = plain_validation_fields(exc)
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        raise RequestInvalid(f"invalid request body: {summary}", fields) from None


def _headers(method: str, json: Any, idempotency_key: str | None) -> dict[str, str]:
    """A request's own headers: a write's Idempotency-Key (required), the body's type."""
    headers: dict[str, str] = {}
    if method in _WRITE_METHODS:
        if idempotency_key is None or not IDEMPOTENCY_KEY_PATTERN.fullmatch(idempotency_key):
            raise ValueError("every write needs an Idempotency-Key of 1-64 [A-Za-z0-9_-]")
        headers["Idempotency-Key"] = idempotency_key
    if json is not None:
        headers["Content-Type"] = "application/json"
    return headers


def _retry_after(headers: Mapping[str, str], details: Mapping[str, Any]) -> float | None:
    raw = headers.get("retry-after") or details.get("retry_after_seconds")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _may_have_reached_server(exc: httpx2.TransportError) -> bool:
    # Failing to connect means the request never left; anything later may have been
    # processed by the API before the connection broke.
    return not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)


@cache
def _tls() -> ssl.SSLContext:
    """The TLS context every API client of the process shares. Each new context loads the
    trust store (~18 ms of CPU); a hosted server makes a client per user."""
    return httpx2.create_ssl_context()


class TradavityClient:
    """Async client for one API key. Use as `async with TradavityClient(...) as api:`."""

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str = "https://app.tradavity.com/api/v1",
        transport: httpx2.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        window: SendWindow | None = None,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self.principal = principal_for_key(key.get_secret_value())
        self.retry = retry or RetryPolicy()
        self._clock = clock or SystemClock()
        # `window`: where this key's send times are kept (default: this client's memory;
        # replicas share one, so together they stay under the key's limit).
        self._pacer = RateLimitPacer(self._clock, window)
        self._base_url = httpx2.URL(base_url.rstrip("/") + "/")
        self._auth = _KeyAuth(key)
        self._transport = transport
        self._timeout = timeout
        # Made on first use: a default transport builds a TLS context and imports the
        # HTTP/1.1 stack (tens of milliseconds), which a server should not pay before it
        # answers `initialize`, nor a hosted user before their first request.
        self._http_client: httpx2.AsyncClient | None = None
        self._closed = False
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"TradavityClient(base_url={self.base_url!r}, principal={self.principal!r})"

    @property
    def base_url(self) -> str:
        """The API's base URL, as configured (never holds the key)."""
        return str(self._base_url).rstrip("/")

    @property
    def _http(self) -> httpx2.AsyncClient:
        """The HTTP client, made on the first request."""
        if self._http_client is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            self._http_client = httpx2.AsyncClient(
                base_url=self._base_url,
                auth=self._auth,
                transport=self._transport,
                # Used only without a transport of the caller's own.
                verify=_tls() if self._transport is None else True,
                timeout=self._timeout,
                headers={
                    "User-Agent": f"tradavity-mcp/{__version__}",
                    "Accept": "application/json",
                },
                follow_redirects=False,
            )
        return self._http_client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._http_client is not None:
            await self._http_client.aclose()

    @property
    def rate_limit(self) -> RateLimitState:
        """The newest rate-limit window the API reported."""
        return self._pacer.state

    # --- the one request path ---------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        form: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        """Send one logical request: pace, retry what is safe, parse, raise typed errors."""
        method = method.upper()
        headers = _headers(method, json, idempotency_key)
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        url = path.lstrip("/")
        attempt = 0
        maybe_applied = False
        sync_errors: list[APIStatusError] = []
        error_ids: set[str] = set()
        while True:
            attempt += 1
            try:
                response = await self._send(
                    method, url, params=query, json=json, files=files, data=form, headers=headers
                )
            except httpx2.InvalidURL as exc:
                # The request cannot even be built (a filter thousands of characters long):
                # nothing was sent, and retrying cannot help.
                raise RequestInvalid(f"request refused before sending: {exc}") from None
            except httpx2.TransportError as exc:
                maybe_applied = maybe_applied or (
                    method in _WRITE_METHODS and _may_have_reached_server(exc)
                )
                await self._after_no_answer(method, url, exc, attempt, maybe_applied)
                continue
            result = self._parse(response)
            if isinstance(result, ApiResponse):
                logger.debug(
                    "%s /%s -> %d %s%s",
                    method,
                    url,
                    result.status,
                    result.request_id or "",
                    " (replay)" if result.replayed else "",
                )
                return result
            logger.info("%s /%s -> %d %s", method, url, result.status, result.error_code)
            if idempotency_key is not None:
                # The same request id twice under one key is the API's replay cache
                # answering, with or without its header: another try would replay it.
                rid = result.request_id
                result.replayed = result.replayed or (rid is not None and rid in error_ids)
                if rid is not None:
                    error_ids.add(rid)
                if result.replayed:
                    raise result
            await self._after_error(result, attempt, sync_errors)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        """One HTTP request, in a slot of the key's window. The send is dated again once
        answered (or failed): the API counted it by then, so a slow request does not
        free its slot early."""
        send = await self._pacer.acquire()
        self.requests_sent += 1
        try:
            return await self._http.request(method, url, **kwargs)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_SETTLE_SECONDS):
                await self._pacer.settle(send)

    async def _after_no_answer(
        self, method: str, url: str, exc: Exception, attempt: int, maybe_applied: bool
    ) -> None:
        """No answer: wait before the next try, or give up (saying whether a write may
        have landed)."""
        logger.warning("%s /%s: %s (attempt %d)", method, url, type(exc).__name__, attempt)
        if attempt >= self.retry.max_attempts:
            raise APIConnectionError(
                f"no answer from the Tradavity API after {attempt} attempts ({type(exc).__name__})",
                outcome_unknown=maybe_applied,
                attempts=attempt,
            ) from None
        await self._clock.sleep(self.retry.backoff(attempt, self._clock.jitter()))

    async def _after_error(
        self, error: APIStatusError, attempt: int, sync_errors: list[APIStatusError]
    ) -> None:
        """An error answer: wait as it asks before the next try, or raise it."""
        if sync_errors and isinstance(error, ConnectionSyncCooldown):
            # Our retry of a failed sync met the cooldown that failed run started: the
            # news is the sync failure, and when the next try can go.
            failure = sync_errors[-1]
            failure.retry_after = error.retry_after_seconds
            raise failure
        if error.retry_once:
            sync_errors.append(error)
            if len(sync_errors) > self.retry.sync_error_retries or (
                attempt >= self.retry.max_attempts
            ):
                raise error
            await self._clock.sleep(self.retry.backoff(attempt, self._clock.jitter()))
            return
        if not error.retryable or attempt >= self.retry.max_attempts:
            raise error
        if isinstance(error, RateLimited):
            wait = error.retry_after
            if wait is not None and wait > self.retry.max_retry_after:
                raise error
            self._pacer.block(wait if wait is not None else self.retry.backoff(attempt, 0.5))
        elif error.retry_after is not None and error.retry_after <= self.retry.max_retry_after:
            await self._clock.sleep(error.retry_after)
        else:
            await self._clock.sleep(self.retry.backoff(attempt, self._clock.jitter()))

    def _parse(self, response: httpx2.Response) -> ApiResponse | APIStatusError:
        headers = response.headers
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        envelope: dict[str, Any] = body if isinstance(body, dict) else {}
        meta = _dict(envelope.get("meta"))
        self._pacer.observe(parse_rate_limit(headers, meta))

        if response.is_success and envelope.get("ok", True) is not False:
            return ApiResponse(
                status=response.status_code,
                data=envelope.get("data"),
                meta=meta,
                replayed=headers.get("x-idempotent-replay", "").lower() == "true",
                headers=dict(headers),
                content=response.content,
            )
        err = _dict(envelope.get("error"))
        details = _dict(err.get("details"))
        if "x-ratelimit-scope" in headers and "scope" not in details:
            details = {**details, "scope": headers["x-ratelimit-scope"]}
        error = error_for(
            status=response.status_code,
            code=err.get("code"),
            message=str(err.get("message") or response.reason_phrase or "request failed"),
            details=details,
            request_id=meta.get("request_id"),
            retry_after=_retry_after(headers, details),
        )
        error.replayed = headers.get("x-idempotent-replay", "").lower() == "true"
        return error

    async def list_all(
        self,
        path: str,
        *names: str,
        params: Mapping[str, Any] | None = None,
        page_size: int = STATIC_PAGE_SIZE,
        id_field: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of an offset-paginated list (or the first `limit`), `page_size` a page.

        Pages follow `has_more` (else `total_count`; a list without either is one page).
        With `id_field`, a row seen on an earlier page (the list shifted under us) is kept
        once, and a page bringing nothing new ends the walk.
        """
        base = {k: v for k, v in (params or {}).items() if k not in {"limit", "offset"}}
        rows: list[dict[str, Any]] = []
        seen: set[Any] = set()
        offset = 0
        for _ in range(_MAX_PAGES):
            size = page_size if limit is None else min(page_size, limit - len(rows))
            if size <= 0:
                break
            resp = await self.request("GET", path, params={**base, "limit": size, "offset": offset})
            chunk = _rows(resp.data, *names, where=f"GET {path}")
            fresh = 0
            for row in chunk:
                ident = row.get(id_field) if id_field else None
                if ident is not None:
                    if ident in seen:
                        continue
                    seen.add(ident)
                rows.append(row)
                fresh += 1
            offset += len(chunk)
            if not fresh or not _has_more(resp, offset):
                break
        return rows if limit is None else rows[:limit]

    # --- identity & catalog -----------------------------------------------------------

    async def me(self) -> Me:
        me = Me.model_validate((await self.request("GET", "/me")).data)
        if me.scopes_at is None:
            missed(
                "me.scopes",
                "GET /me did not say the key's scopes (looked at "
                + ", ".join(SCOPE_PLACES)
                + "): every tool is offered and Tradavity's own 403 answers a call the "
                "key may not make",
            )
        return me

    async def catalog(self, name: str, **params: Any) -> Any:
        """`/usage`, `/brokers`, `/instruments`, `/prop-firm-presets`, `/scopes`, `/emotions`."""
        return (await self.request("GET", f"/{name}", params=params)).data

    async def emotions(self) -> list[str]:
        data = await self.catalog("emotions")
        rows = data.get("emotions", data) if isinstance(data, dict) else data
        out: list[str] = []
        for row in rows or []:
            if isinstance(row, str):
                out.append(row)
            elif isinstance(row, dict):
                value = row.get("value") or row.get("name")
                if value:
                    out.append(str(value))
        return out

    # --- trades -------------------------------------------------------------------------

    async def list_trades(self, **filters: Any) -> Page:
        resp = await self.request("GET", "/trades", params=filters)
        rows = _rows(resp.data, "trades", where="GET /trades")
        return Page(
            items=[TradeRow.model_validate(r) for r in rows],
            next_cursor=resp.meta.get("next_cursor"),
            has_more=bool(resp.meta.get("has_more")),
        )

    async def iter_trades(self, **filters: Any) -> AsyncIterator[TradeRow]:
        """Every trade matching the filters, following the cursor."""
        cursor: str | None = None
        while True:
            page = await self.list_trades(**filters, cursor=cursor)
            for row in page.items:
                yield row
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get_trade(self, trade_number: int) -> Trade:
        data = (await self.request("GET", f"/trades/{trade_number}")).data
        return Trade.model_validate(_unwrap(data, "trade"))

    async def create_trade(
        self, body: TradeCreate | Mapping[str, Any], *, idempotency_key: str
    ) -> Trade:
        payload = _validate(TradeCreate, body).to_json()
        resp = await self.request("POST", "/trades", json=payload, idempotency_key=idempotency_key)
        return Trade.model_validate(_unwrap(resp.data, "trade"))

    async def update_trade(
        self, trade_number: int, body: TradePatch | Mapping[str, Any], *, idempotency_key: str
    ) -> Trade:
        payload = _validate(TradePatch, body).to_json()
        resp = await self.request(
            "PATCH", f"/trades/{trade_number}", json=payload, idempotency_key=idempotency_key
        )
        return Trade.model_validate(_unwrap(resp.data, "trade"))

    async def archive_trade(
        self, trade_number: int, *, idempotency_key: str, including_copies: bool = False
    ) -> int:
        """Archive a trade; returns how many trades were archived."""
        resp = await self.request(
            "DELETE",
            f"/trades/{trade_number}",
            params={"including_copies": "true"} if including_copies else None,
            idempotency_key=idempotency_key,
        )
        return int(resp.headers.get("x-trades-archived", "1"))

    async def set_trade_tags(
        self, trade_number: int, tag_ids: list[int], *, idempotency_key: str
    ) -> list[dict[str, Any]] | None:
        """Replace the trade's whole tag set (the API has no add/remove). The tags it
        answers with, or None when the answer cannot be read (the write landed)."""
        payload = _validate(TagsReplace, {"tag_ids": tag_ids}).to_json()
        resp = await self.request(
            "PUT", f"/trades/{trade_number}/tags", json=payload, idempotency_key=idempotency_key
        )
        return _written_rows(resp.data, "tags", where=f"PUT /trades/{trade_number}/tags")

    async def set_executions(
        self,
        trade_number: int,
        body: ExecutionsReplace | Mapping[str, Any],
        *,
        idempotency_key: str,
    ) -> list[Execution] | None:
        """Replace the trade's fills; the fills answered, or None when unreadable."""
        payload = _validate(ExecutionsReplace, body).to_json()
        resp = await self.request(
            "PUT",
            f"/trades/{trade_number}/executions",
            json=payload,
            idempotency_key=idempotency_key,
        )
        where = f"PUT /trades/{trade_number}/executions"
        rows = _written_rows(resp.data, "executions", where=where)
        return None if rows is None else [Execution.model_validate(r) for r in rows]

    async def list_executions(self, trade_number: int) -> list[Execution]:
        resp = await self.request("GET", f"/trades/{trade_number}/executions")
        rows = _rows(resp.data, "executions", where=f"GET /trades/{trade_number}/executions")
        return [Execution.model_validate(r) for r in rows]

    async def set_confirmations(
        self,
        trade_number: int,
        body: ConfirmationsReplace | Mapping[str, Any],
        *,
        idempotency_key: str,
    ) -> list[dict[str, Any]] | None:
        payload = _validate(ConfirmationsReplace, body).to_json()
        resp = await self.request(
            "PUT",
            f"/trades/{trade_number}/confirmations",
            json=payload,
            idempotency_key=idempotency_key,
        )
        where = f"PUT /trades/{trade_number}/confirmations"
        return _written_rows(resp.data, "confirmations", where=where)

    async def upload_screenshot(
        self,
        trade_number: int,
        content: bytes,
        filename: str,
        *,
        idempotency_key: str,
        label: str | None = None,
        sort_order: int | None = None,
    ) -> Screenshot:
        """Multipart upload. Refuses, before sending, files over 10 MB or not PNG/JPEG/PDF."""
        upload = prepare_upload(content, filename, label=label)
        form: dict[str, str] = {}
        if label is not None:
            form["label"] = label
        if sort_order is not None:
            form["sort_order"] = str(sort_order)
        resp = await self.request(
            "POST",
            f"/trades/{trade_number}/screenshots",
            files={"file": (upload.filename, content, upload.mime_type)},
            form=form,
            idempotency_key=idempotency_key,
        )
        return Screenshot.model_validate(_unwrap(resp.data, "screenshot"))

    async def list_screenshots(self, trade_number: int) -> list[Screenshot]:
        resp = await self.request("GET", f"/trades/{trade_number}/screenshots")
        rows = _rows(resp.data, "screenshots", where=f"GET /trades/{trade_number}/screenshots")
        return [Screenshot.model_validate(r) for r in rows]

    async def download_screenshot(self, trade_number: int, screenshot_id: int) -> bytes:
        """The screenshot's file, as the API streams it."""
        resp = await self.request("GET", f"/trades/{trade_number}/screenshots/{screenshot_id}")
        return resp.content

    # --- tags ---------------------------------------------------------------------------

    async def list_tags(self, **filters: Any) -> list[Tag]:
        rows = await self.list_all("/tags", "tags", params=filters, id_field="tag_id")
        return [Tag.model_validate(r) for r in rows]

    async def list_tag_categories(self) -> list[TagCategory]:
        rows = await self.list_all(
            "/tag-categories", "categories", "tag_categories", id_field="category_id"
        )
        return [TagCategory.model_validate(r) for r in rows]

    async def create_tag(self, body: TagCreate | Mapping[str, Any], *, idempotency_key: str) -> Tag:
        payload = _validate(TagCreate, body).to_json()
        resp = await self.request("POST", "/tags", json=payload, idempotency_key=idempotency_key)
        return Tag.model_validate(_unwrap(resp.data, "tag"))

    async def create_tag_category(
        self, body: TagCategoryCreate | Mapping[str, Any], *, idempotency_key: str
    ) -> TagCategory:
        payload = _validate(TagCategoryCreate, body).to_json()
        resp = await self.request(
            "POST", "/tag-categories", json=payload, idempotency_key=idempotency_key
        )
        return TagCategory.model_validate(_unwrap(resp.data, "category", "tag_category"))

    # --- accounts, strategies, protocols -------------------------------------------------

    async def list_accounts(self, **filters: Any) -> list[Account]:
        """Accounts (active ones; pass `include_archived=True` for every account)."""
        rows = await self.list_all("/accounts", "accounts", params=filters, id_field="account_id")
        return [Account.model_validate(r) for r in rows]

    async def list_strategies(self, **filters: Any) -> list[Strategy]:
        rows = await self.list_all(
            "/strategies", "strategies", params=filters, id_field="strategy_id"
        )
        return [Strategy.model_validate(r) for r in rows]

    async def get_strategy(self, strategy_id: int) -> Strategy:
        data = (await self.request("GET", f"/strategies/{strategy_id}")).data
        return Strategy.model_validate(_unwrap(data, "strategy"))

    async def list_protocols(self, **filters: Any) -> list[Protocol]:
        rows = await self.list_all(
            "/protocols", "protocols", params=filters, id_field="protocol_id"
        )
        return [Protocol.model_validate(r) for r in rows]

    async def get_protocol(self, protocol_id: int) -> Protocol:
        data = (await self.request("GET", f"/protocols/{protocol_id}")).data
        return Protocol.model_validate(_unwrap(data, "protocol"))

    async def record_protocol_response(
        self,
        protocol_id: int,
        body: ProtocolResponseCreate | Mapping[str, Any],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        payload = _validate(ProtocolResponseCreate, body).to_json()
        resp = await self.request(
            "POST",
            f"/protocols/{protocol_id}/responses",
            json=payload,
            idempotency_key=idempotency_key,
        )
        out = _unwrap(resp.data, "response")
        return out if isinstance(out, dict) else {}

    async def get_protocol_response(self, protocol_id: int, response_id: int) -> dict[str, Any]:
        """One response with its per-item `answers` (item_id, item_type, value)."""
        data = (await self.request("GET", f"/protocols/{protocol_id}/responses/{response_id}")).data
        out = _unwrap(data, "response")
        return out if isinstance(out, dict) else {}

    async def update_protocol_response(
        self,
        protocol_id: int,
        response_id: int,
        body: ProtocolResponsePatch | Mapping[str, Any],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Change a response (its answers replaced as a whole, its status); the response
        as re-read."""
        payload = _validate(ProtocolResponsePatch, body).to_json()
        resp = await self.request(
            "PATCH",
            f"/protocols/{protocol_id}/responses/{response_id}",
            json=payload,
            idempotency_key=idempotency_key,
        )
        out = _unwrap(resp.data, "response")
        return out if isinstance(out, dict) else {}

    async def list_protocol_responses(
        self, protocol_id: int, **filters: Any
    ) -> list[dict[str, Any]]:
        return await self.list_all(
            f"/protocols/{protocol_id}/responses",
            "responses",
            params=filters,
            page_size=HIGH_VOLUME_PAGE_SIZE,
            id_field="response_id",
        )

    # --- auto-sync ----------------------------------------------------------------------

    async def list_connections(self) -> list[AutosyncConnection]:
        rows = await self.list_all("/autosync/connections", "connections", id_field="connection_id")
        return [AutosyncConnection.model_validate(r) for r in rows]

    async def sync_log(self, *, limit: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """The sync history, newest first: every row, or the newest `limit`."""
        return await self.list_all(
            "/autosync/log",
            "log",
            "entries",
            "logs",
            params=params,
            page_size=HIGH_VOLUME_PAGE_SIZE,
            id_field="log_id",
            limit=limit,
        )

    async def trigger_sync(self, connection_id: int, *, idempotency_key: str) -> SyncResult:
        """Run a manual sync. A cooldown raises `ConnectionSyncCooldown` (never retried)."""
        resp = await self.request(
            "POST", f"/autosync/connections/{connection_id}/sync", idempotency_key=idempotency_key
        )
        return SyncResult.model_validate(_unwrap(resp.data, "sync"))

    # --- reports ------------------------------------------------------------------------

    async def stats(self, kind: str = "summary", **filters: Any) -> dict[str, Any]:
        """`kind` is `summary`, `by-symbol` or `by-strategy`."""
        data = (await self.request("GET", f"/stats/{kind}", params=filters)).data
        return data if isinstance(data, dict) else {"rows": data}

    async def calendar(self, **filters: Any) -> dict[str, Any]:
        data = (await self.request("GET", "/calendar", params=filters)).data
        return data if isinstance(data, dict) else {"days": data}

    # --- balance and goals --------------------------------------------------------------

    async def balance(self, account_id: int) -> dict[str, Any]:
        """An account's balance block (404 `NotFound` when it has no balance profile)."""
        data = (await self.request("GET", f"/accounts/{account_id}/balance")).data
        out = _unwrap(data, "balance")
        return out if isinstance(out, dict) else {}

    async def balance_events(
        self, account_id: int, *, limit: int = 5, **params: Any
    ) -> list[dict[str, Any]]:
        """The newest `limit` balance events (`event_type` filters), newest first."""
        return await self.list_all(
            f"/accounts/{account_id}/balance/events",
            "events",
            params=params,
            page_size=HIGH_VOLUME_PAGE_SIZE,
            id_field="event_id",
            limit=limit,
        )

    async def payouts(self, account_id: int, *, limit: int = 5) -> list[dict[str, Any]]:
        return await self.list_all(
            f"/accounts/{account_id}/balance/payouts",
            "payouts",
            page_size=HIGH_VOLUME_PAGE_SIZE,
            id_field="payout_id",
            limit=limit,
        )

    async def goals(self, **params: Any) -> list[dict[str, Any]]:
        """Goals (`status`: active by default, paused, archived or all)."""
        return await self.list_all("/goals", "goals", params=params, id_field="goal_id")

    async def goal_snapshots(self, goal_id: int, *, limit: int = 4) -> list[dict[str, Any]]:
        """A goal's newest `limit` period snapshots, newest first."""
        return await self.list_all(
            f"/goals/{goal_id}/snapshots",
            "snapshots",
            page_size=365,
            id_field="snapshot_id",
            limit=limit,
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _has_more(resp: ApiResponse, fetched: int) -> bool:
    """Whether an offset list has rows past the first `fetched`."""
    for where in (resp.data, resp.meta):
        if isinstance(where, Mapping) and isinstance(where.get("has_more"), bool):
            return bool(where["has_more"])
    for where in (resp.data, resp.meta):
        if isinstance(where, Mapping) and isinstance(where.get("total_count"), int):
            return fetched < int(where["total_count"])
    return False


def _unwrap(data: Any, *names: str) -> Any:
    """`{"trade": {...}}` -> `{...}`; a bare object passes through."""
    if isinstance(data, dict):
        for name in names:
            if isinstance(data.get(name), dict):
                return data[name]
    return data


def _rows(data: Any, *names: str, where: str) -> list[dict[str, Any]]:
    """A list answer's rows: bare, or wrapped as `{"<name>": [...]}` (the names given,
    then `items`, `data`, `rows`). The reference names no wrapper, so an object holding
    exactly one list under another name is read as that list (said once in the log);
    any other object is an `UnexpectedShape` naming its keys, never an empty list."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for name in (*names, "items", "data", "rows"):
            value = data.get(name)
            if isinstance(value, list):
                return [r for r in value if isinstance(r, dict)]
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) == 1:
            missed(
                f"rows:{_route(where)}",
                f"{where} answered its rows under '{lists[0]}', not '{names[0]}'; read from there",
            )
            return [r for r in data[lists[0]] if isinstance(r, dict)]
    found = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
    expected = "', '".join(names)
    message = (
        f"Tradavity's answer to {where} holds no list of rows where one was expected "
        f"(looked for '{expected}'; found: {found or 'an empty object'}). Nothing was "
        "taken for empty; this server may need an update for the API's new shape."
    )
    missed(f"rows:{_route(where)}", message)
    raise UnexpectedShape(message)


def _written_rows(data: Any, *names: str, where: str) -> list[dict[str, Any]] | None:
    """The rows a write answered with, or None when they cannot be read: the write has
    landed all the same, so the caller reads the result back instead of failing."""
    try:
        return _rows(data, *names, where=where)
    except UnexpectedShape:
        return None


def _route(where: str) -> str:
    """`GET /trades/581/executions` -> `GET /trades/{id}/executions`: one miss per route."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", where)
