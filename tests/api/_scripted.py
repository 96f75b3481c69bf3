"""A scripted transport: answers requests from a list of canned outcomes."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx2

from tradavity_mcp.api.client import RetryPolicy, TradavityClient
from tradavity_mcp.api.clock import FakeClock

KEY = "tvty_" + "ab" * 24
BASE = "https://api.test/api/v1"

Outcome = httpx2.Response | Exception | Callable[[httpx2.Request], httpx2.Response]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"ok": True, "data": data, "meta": {"request_id": "req_0000000000000001"}}
    return httpx2.Response(status, json=body, headers=headers or {})


_REQUEST_IDS = itertools.count(0xDEADBEEF)


def fail(
    status: int,
    code: str,
    message: str = "nope",
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    body = {
        "ok": False,
        "error": {"code": code, "message": message, "details": details or {}},
        # Each answer its own request id, as the API gives: the same id twice under one
        # Idempotency-Key is the API's replay cache answering (client.request).
        "meta": {"request_id": f"req_{next(_REQUEST_IDS):016x}"},
    }
    return httpx2.Response(status, json=body, headers=headers or {})


class Script:
    """Plays outcomes in order (the last one repeats) and records every request."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, httpx2.Response):
            return outcome
        return outcome(request)

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def make_client(
    script: Callable[[httpx2.Request], httpx2.Response],
    clock: FakeClock | None = None,
    retry: RetryPolicy | None = None,
) -> TradavityClient:
    return TradavityClient(
        KEY,
        base_url=BASE,
        transport=httpx2.MockTransport(script),
        clock=clock or FakeClock(),
        retry=retry,
    )
