"""The sandbox in a process of its own, for the replica tests and benchmark:
`python -m tests.replicas._sandbox --port N [--rate-multiplier K]`.

Beside the API under `/api/v1` it answers a few harness routes under `/_harness/` (no
key; loopback only), which the in-process tests reach through `app.state.sandbox`:

* `POST /_harness/faults` `{"spec": "latency_ms=400"}` (or `{"spec": null}`): faults now
  (`latency_ms` holds each request before the API looks at it);
* `POST /_harness/hold` `{"ms": 400}`: every write is carried out at once and its answer
  held back that long (a write that landed, its answer still on the way); `0` ends it;
* `GET /_harness/log?since=N`: the API requests from entry N (method, path, status,
  idempotency key, replayed, the key's principal, the monotonic time of the answer),
  and `next`, the index to ask from next time;
* `POST /_harness/keys`: a new API key of the demo trader (a principal of its own, so
  each scenario starts with an empty ledger and fresh rate windows);
* `GET /_harness/counters`.

`--rate-multiplier K` lifts the pro plan's rate windows K times (the benchmark and the
drill measure the replicas, not the API's limits); the free plan keeps its own, and the
tests keep the API's windows as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import uvicorn
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from tradavity_mcp.api.idempotency import principal_for_key
from tradavity_mcp.sandbox import FaultSpec, SandboxConfig, create_app
from tradavity_mcp.sandbox import _pipeline as pipeline
from tradavity_mcp.sandbox._serve import listening_socket

CONTROL = "/_harness/"


class HarnessSandbox:
    """The sandbox app, with the harness's routes in front of it."""

    def __init__(self) -> None:
        self.app = create_app(SandboxConfig(db=":memory:"))
        self.state = self.app.state.sandbox
        self.hold_seconds = 0.0
        #: Every API request as it was answered (the answer's start, before any hold).
        self.log: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/api/", CONTROL)):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(CONTROL):
            request = Request(scope, receive)
            response = await self._control(request, scope["path"].removeprefix(CONTROL))
            await response(scope, receive, send)
            return
        headers = Headers(scope=scope)
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        hold = self.hold_seconds if scope["method"] != "GET" else 0.0

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = Headers(raw=message["headers"])
                self.log.append(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": message["status"],
                        "idempotency_key": headers.get("idempotency-key"),
                        "replayed": answer.get("x-idempotent-replay") == "true",
                        "principal": principal_for_key(bearer) if bearer else None,
                        "t": time.monotonic(),
                    }
                )
                if hold:  # carried out (and logged) already; the answer waits
                    await asyncio.sleep(hold)
            await send(message)

        await self.app(scope, receive, logged)

    async def _control(self, request: Request, name: str) -> JSONResponse:
        if name == "faults" and request.method == "POST":
            spec = (await request.json()).get("spec")
            self.state.set_faults(FaultSpec.parse(spec) if spec else None)
            return JSONResponse({"ok": True})
        if name == "hold" and request.method == "POST":
            self.hold_seconds = float((await request.json())["ms"]) / 1000
            return JSONResponse({"ok": True})
        if name == "log" and request.method == "GET":
            since = int(request.query_params.get("since", "0"))
            records = self.log[since:]
            return JSONResponse({"records": records, "next": since + len(records)})
        if name == "keys" and request.method == "POST":
            return JSONResponse({"key": self.state.issue_key()})
        if name == "counters" and request.method == "GET":
            return JSONResponse(dict(self.state.counters))
        return JSONResponse({"error": f"no harness route {request.method} {name}"}, 404)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate-multiplier", type=int, default=1)
    args = parser.parse_args()
    if args.rate_multiplier != 1:  # the pro plan's windows; the free plan keeps its own
        k = args.rate_multiplier
        per_minute, per_day, per_user = pipeline.TIERS["pro"]
        pipeline.TIERS["pro"] = (per_minute * k, per_day * k, per_user * k)
    sock = listening_socket("127.0.0.1", args.port)
    print(json.dumps({"port": sock.getsockname()[1]}), file=sys.stderr, flush=True)
    config = uvicorn.Config(HarnessSandbox(), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
