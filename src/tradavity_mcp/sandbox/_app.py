"""The sandbox ASGI app: `create_app(SandboxConfig(...))`."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from ._clock import Clock, ManualClock, SystemClock
from ._faults import Faults, FaultSpec
from ._pipeline import Dropped, Pipeline, RequestRecord
from ._seed import DEFAULT_DEMO_DAYS, DEMO_KEY, hash_key, iso, seed
from ._store import Store
from .routes import routes

__all__ = ["SandboxConfig", "SandboxState", "create_app"]


@dataclass
class SandboxConfig:
    db: str = ":memory:"
    faults: FaultSpec | None = None
    fault_seed: int = 0
    clock: Clock | None = None
    seed: int = 42
    #: The seeded demo journal's length in days (used only when the store is empty).
    demo_days: int = DEFAULT_DEMO_DAYS


@dataclass
class SandboxState:
    """What tests can see and steer (the app's `state.sandbox`)."""

    clock: Clock
    store: Store
    pipeline: Pipeline
    config: SandboxConfig = field(default_factory=SandboxConfig)

    @property
    def counters(self) -> Counter[str]:
        return self.pipeline.counters

    @property
    def request_log(self) -> list[RequestRecord]:
        return self.pipeline.request_log

    def set_faults(self, spec: FaultSpec | None) -> None:
        self.pipeline.set_faults(spec)

    def set_storage_quota(self, user_id: int, quota_bytes: int | None) -> None:
        """Give a user a file budget other than their plan's (None restores the plan's)."""
        user = self.store.get("user", user_id)
        if user is None:
            raise ValueError("no such user")
        with self.store.transaction():
            self.store.put("user", user_id, user_id, {**user, "storage_quota_bytes": quota_bytes})

    def reset_counters(self) -> None:
        """Zero the counters and empty the request log."""
        self.pipeline.reset()

    def issue_key(
        self, like: str = DEMO_KEY, *, scopes: list[str] | None = None, name: str = "Test key"
    ) -> str:
        """A new API key for the user who owns `like` (its scopes unless given)."""
        digest = hash_key(like)
        model = next((k for k in self.store.all("key") if k["hash"] == digest), None)
        if model is None:
            raise ValueError("no such key")
        with self.store.transaction():
            kid = self.store.next_id("key")
            key = "tvty_" + hashlib.sha256(f"issued-{kid}".encode()).hexdigest()[:48]
            self.store.put(
                "key",
                kid,
                model["user_id"],
                {
                    **model,
                    "key_id": kid,
                    "hash": hash_key(key),
                    "prefix": key[:12],
                    "name": name,
                    "scopes": list(model["scopes"] if scopes is None else scopes),
                    "revoked": False,
                    "expires_at": None,
                    "created_at": iso(self.clock.now()),
                },
            )
        return key


class _Api:
    """The ASGI endpoint for everything under /api/v1, including the drop fault."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        status, body, headers, drop, media = await self.pipeline.handle(request)
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if status != 204:
            raw_headers.append((b"content-type", media.encode()))
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        if drop:
            # The write is committed; the connection dies before the body is complete.
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise Dropped("connection dropped after commit (injected fault)")
        await send({"type": "http.response.body", "body": body})


def create_app(config: SandboxConfig | None = None) -> Starlette:
    config = config or SandboxConfig()
    clock = config.clock or SystemClock()
    store = Store(config.db)
    if store.empty:
        seed(
            store,
            clock.now(),
            config.seed,
            demo_days=config.demo_days,
            remember=isinstance(clock, ManualClock),
        )
    pipeline = Pipeline(store, clock, Faults(config.faults, config.fault_seed), routes())

    async def root(request: Request) -> JSONResponse:
        return JSONResponse(
            {"ok": True, "data": {"service": "tradavity sandbox", "api": "/api/v1"}}
        )

    api = _Api(pipeline)
    app = Starlette(routes=[StarletteRoute("/", root)])
    app.mount("/api/v1", app=api)
    app.state.sandbox = SandboxState(clock=clock, store=store, pipeline=pipeline, config=config)
    return app


def state_of(app: Any) -> SandboxState:
    state = app.state.sandbox
    assert isinstance(state, SandboxState)
    return state
