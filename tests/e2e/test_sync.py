"""Sync you can watch: runs and events, status, subscriptions, and the SSE stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import ResourceUpdatedNotification, TextResourceContents

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, StreamOptions, build_http_app, build_server
from tradavity_mcp.settings import Settings

from ..kit import TLS, SandboxTime, data_of, http_transport
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _read(client: Client, uri: str) -> Any:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents)
    return json.loads(content.text)


async def _connections(client: Client) -> tuple[int, int]:
    rows = data_of(await client.call_tool("lookup", {"name": "connections"}))["items"]
    good = next(r["id"] for r in rows if r["status"] == "active")
    bad = next(r["id"] for r in rows if r["status"] == "token_expired")
    return int(good), int(bad)


async def test_run_events_in_order_and_cooldown_status(client: Client, env: Env) -> None:
    good, _ = await _connections(client)
    first = data_of(await client.call_tool("trigger_sync", {"connection": good}))
    run_id = first["run_id"]
    events = (await _read(client, "tradavity://sync/recent?limit=10"))["events"]
    mine = [e for e in reversed(events) if e["run_id"] == run_id]
    assert [e["stage"] for e in mine] == ["queued", "started", "completed"]
    assert mine[-1]["status"] == "success"
    assert mine[-1]["source"] == "manual"
    assert mine[-1]["imported"] == first["imported"]
    runs = (await _read(client, "tradavity://sync/runs"))["runs"]
    assert runs[0]["run_id"] == run_id
    assert runs[0]["stage"] == "completed"

    second = data_of(await client.call_tool("trigger_sync", {"connection": good}))
    assert second["outcome"] == "cooling_down"
    status = data_of(await client.call_tool("sync_status", {"connection": good}))
    state = status["connections"][0]
    assert state["state"] == "cooling_down"
    assert 18 <= state["cooldown_seconds_left"] <= 20
    waited = data_of(await client.call_tool("trigger_sync", {"connection": good, "wait": True}))
    assert waited["outcome"] == "done"
    third = [
        e["stage"]
        for e in reversed((await _read(client, "tradavity://sync/recent?limit=50"))["events"])
        if e["run_id"] == waited["run_id"]
    ]
    assert third == ["queued", "started", "queued", "started", "completed"]


async def test_token_expired_shows_needs_reconnect(client: Client) -> None:
    _, bad = await _connections(client)
    refused = await client.call_tool("trigger_sync", {"connection": bad})
    assert refused.is_error
    status = data_of(await client.call_tool("sync_status", {"connection": bad}))["connections"][0]
    assert status["state"] == "needs_reconnect"
    assert "Reconnect" in status["action"]
    failed = (await _read(client, "tradavity://sync/runs"))["runs"][0]
    assert failed["status"] == "failed"
    assert "Auto-Sync" in failed["retry"]


async def test_scheduled_syncs_become_runs(client: Client, env: Env) -> None:
    env.clock.advance(31 * 60)
    await client.call_tool("sync_status", {})
    runs = (await _read(client, "tradavity://sync/runs?limit=50"))["runs"]
    assert {r["source"] for r in runs} == {"schedule"}
    assert len(runs) >= 4  # two connections, two 15-minute slots each


class RealWaits(SandboxTime):
    """The sandbox's time, but waiting really waits."""

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


async def test_a_cancelled_wait_ends_as_cancelled(env: Env) -> None:
    server = env.server(clock=RealWaits(env.clock))  # so the client can give up on a wait
    async with Client(server) as client:
        good, _ = await _connections(client)
        data_of(await client.call_tool("trigger_sync", {"connection": good}))
        with anyio.move_on_after(0.5):
            await client.call_tool("trigger_sync", {"connection": good, "wait": True})
        await anyio.sleep(0.1)
        runs = (await _read(client, "tradavity://sync/runs"))["runs"]
        assert runs[0]["status"] == "cancelled"
        assert runs[0]["stage"] == "cancelled"


async def test_subscribers_are_notified_2026(env: Env) -> None:
    async with Client(env.server(), mode="auto") as client:
        good, _ = await _connections(client)
        async with client.listen(resource_subscriptions=["tradavity://sync/runs"]) as sub:
            await client.call_tool("trigger_sync", {"connection": good})
            with anyio.fail_after(5):
                event = await sub.__anext__()
        assert getattr(event, "uri", None) == "tradavity://sync/runs"


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_subscribers_are_notified_legacy(env: Env) -> None:
    updated = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification) and (
            str(message.params.uri) == "tradavity://sync/recent"
        ):
            updated.set()

    async with Client(env.server(), mode="legacy", message_handler=on_message) as client:
        caps = client.session.server_capabilities
        assert caps is not None
        assert caps.resources is not None
        assert caps.resources.subscribe is True
        await client.session.subscribe_resource("tradavity://sync/recent")
        good, _ = await _connections(client)
        await client.call_tool("trigger_sync", {"connection": good})
        with anyio.fail_after(5):
            await updated.wait()


class MovableClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def _stream_server(
    tmp_path: Path, clock: MovableClock, sandbox: Any | None = None
) -> Iterator[str]:
    sandbox = sandbox or create_app(SandboxConfig(db=":memory:"))
    settings = Settings.load(
        environ={},
        base_url="http://sandbox.local/api/v1",
        state_dir=tmp_path / "s",
        require_key=False,
    )
    hosted = HostedOptions(
        auth="per-user",
        public_url="http://127.0.0.1",
        stream=StreamOptions(heartbeat_seconds=15, clock=clock, poll_seconds=0.02),
    )
    server = build_server(settings, transport=SandboxTransport(sandbox), stdio=False, hosted=hosted)
    with serve_in_thread(
        build_http_app(server, kind="http", host="127.0.0.1"), path="", lifespan=True
    ) as base:
        yield base


async def test_sse_stream_replays_streams_and_beats(tmp_path: Path) -> None:
    clock = MovableClock()
    with _stream_server(tmp_path, clock) as base:
        auth = {"Authorization": f"Bearer {DEMO_KEY}"}
        async with httpx2.AsyncClient(headers=auth, timeout=30, verify=TLS) as http:
            assert (
                await http.get(f"{base}/sync/stream", headers={"Authorization": "Bearer x"})
            ).status_code == 401
            async with Client(http_transport(base, DEMO_KEY)) as client:
                good, _ = await _connections(client)
                first = data_of(await client.call_tool("trigger_sync", {"connection": good}))
                lines: list[str] = []
                async with http.stream("GET", f"{base}/sync/stream", params={"replay": 2}) as resp:
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    reader = resp.aiter_lines()

                    async def until(predicate: Any) -> None:
                        with anyio.fail_after(10):
                            async for line in reader:
                                lines.append(line)
                                if predicate(line):
                                    return

                    await until(lambda line: line == ": connected")
                    await until(lambda line: line.startswith("data:") and '"completed"' in line)
                    replayed = [json.loads(x[5:]) for x in lines if x.startswith("data:")]
                    assert [e["stage"] for e in replayed] == ["started", "completed"]
                    assert replayed[-1]["run_id"] == first["run_id"]
                    clock.now += 16
                    await until(lambda line: line == ": heartbeat")
                    # Live: a sync by this user arrives on the open stream.
                    await client.call_tool("trigger_sync", {"connection": good, "wait": False})
                    await until(lambda line: line == "event: sync.status")
                    seq = max(int(x[4:]) for x in lines if x.startswith("id: "))
        # Reconnecting with Last-Event-ID misses nothing.
        async with (
            httpx2.AsyncClient(headers=auth, timeout=30, verify=TLS) as http,
            http.stream(
                "GET", f"{base}/sync/stream", headers={"Last-Event-ID": str(seq - 1)}
            ) as resp,
        ):
            got: list[str] = []
            with anyio.fail_after(10):
                async for line in resp.aiter_lines():
                    got.append(line)
                    if line == f"id: {seq}":
                        break
            assert f"id: {seq - 1}" not in got


async def test_runs_and_recent_hold_the_api_log_on_the_first_read(env: Env) -> None:
    """A fresh server: the platform's own earlier syncs (the seeded sync log) are in
    sync/runs and sync/recent on their first read, before sync/status was ever read."""
    env.clock.advance(40 * 60)  # the platform runs its 15-minute scheduled syncs
    async with Client(env.server()) as client:
        runs = (await _read(client, "tradavity://sync/runs?limit=50"))["runs"]
        assert runs, "the seeded sync log shows as runs on the first read"
    async with Client(env.server()) as client:
        events = (await _read(client, "tradavity://sync/recent"))["events"]
        assert events
        assert {e["connection_id"] for e in events} <= {e["connection_id"] for e in runs}


async def _lines(base: str, headers: dict[str, str], until: str | None) -> list[str]:
    """The stream's lines up to the first one starting with `until`, or (None) all it
    sends within a second: the replay comes at once."""
    lines: list[str] = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, verify=TLS) as http,
        http.stream("GET", f"{base}/sync/stream") as resp,
    ):
        with anyio.move_on_after(1 if until is None else 10):
            async for line in resp.aiter_lines():
                lines.append(line)
                if until is not None and line.startswith(until):
                    break
    return lines


async def test_a_resume_from_before_a_restart_gets_what_happened_since(tmp_path: Path) -> None:
    """Without --redis the history is the process's: after a restart the ids still
    grow, so a client's Last-Event-ID from before it does not hide the new events."""
    sandbox = create_app(SandboxConfig(db=":memory:"))
    auth = {"Authorization": f"Bearer {DEMO_KEY}"}
    with _stream_server(tmp_path, MovableClock(), sandbox) as base:
        async with Client(http_transport(base, DEMO_KEY)) as client:
            good, bad = await _connections(client)
            await client.call_tool("trigger_sync", {"connection": good})
            for _ in range(6):  # more events before the restart than after it
                await client.call_tool("trigger_sync", {"connection": bad})
        before = await _lines(base, auth, None)
        last = max(int(x[4:]) for x in before if x.startswith("id: "))
    with _stream_server(tmp_path, MovableClock(), sandbox) as base:  # the restart
        async with Client(http_transport(base, DEMO_KEY)) as client:
            failed = await client.call_tool("trigger_sync", {"connection": bad})
        assert failed.is_error
        got: list[str] = []
        async with (
            httpx2.AsyncClient(headers=auth, timeout=30, verify=TLS) as http,
            http.stream("GET", f"{base}/sync/stream", headers={"Last-Event-ID": str(last)}) as resp,
        ):
            with anyio.fail_after(10):
                async for line in resp.aiter_lines():
                    got.append(line)
                    if line.startswith("data:") and '"failed"' in line:
                        break
        events = [json.loads(x[5:]) for x in got if x.startswith("data:")]
        assert events[-1]["connection_id"] == bad
        assert all(int(x[4:]) > last for x in got if x.startswith("id: "))
        # An id this history never gave out: a reset, then the latest events.
        future = {**auth, "Last-Event-ID": str(last * 10)}
        reset = await _lines(base, future, "data:")
        assert "event: sync.reset" in reset
