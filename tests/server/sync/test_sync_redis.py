"""Sync runs, events, cooldowns and the subscription bus shared by replicas through Redis
(`--redis`): real Redis servers, our servers built by `build_server`, the sandbox API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Generic, TypeVar, cast

import anyio
import httpx2
import pytest
import redis
from mcp import Client
from mcp.server.subscriptions import ResourceUpdated, ServerEvent, ToolsListChanged
from mcp.types import ResourceUpdatedNotification, TextResourceContents

from tradavity_mcp.sandbox import (
    DEMO_KEY,
    SECOND_PRO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    create_app,
    serve_in_thread,
)
from tradavity_mcp.server import HostedOptions, StreamOptions, build_http_app, build_server
from tradavity_mcp.server.app import TradavityServer
from tradavity_mcp.server.replicas.redis_client import open_redis
from tradavity_mcp.server.sync.monitor import SyncEvent
from tradavity_mcp.server.sync.shared import RedisSync
from tradavity_mcp.server.workspace import CURRENT_WORKSPACE, Workspace
from tradavity_mcp.settings import Settings

from ...kit import NOW, SANDBOX_URL, TLS, SandboxTime, data_of, http_transport
from ...services import RedisServer

pytestmark = pytest.mark.anyio

RUNS, RECENT = "tradavity://sync/runs", "tradavity://sync/recent"
OUTAGE = "Redis does not answer"

T = TypeVar("T")


async def _read(client: Client, uri: str) -> Any:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents)
    return json.loads(content.text)


async def _good_connection(client: Client) -> int:
    rows = data_of(await client.call_tool("lookup", {"name": "connections"}))["items"]
    return int(next(r["id"] for r in rows if r["status"] == "active"))


async def _next_event(sub: Any, seconds: float = 5.0) -> ServerEvent:
    with anyio.fail_after(seconds):
        return cast(ServerEvent, await sub.__anext__())


# --- two replicas over HTTP: what one syncs, the other serves --------------------------


@contextmanager
def _replicas(tmp_path: Path, redis_url: str, clock: ManualClock) -> Iterator[tuple[Any, str, str]]:
    """The sandbox API and two of our servers (per-user auth, one Redis), each served over
    HTTP in a thread of its own, as separate replicas would be. Yields the sandbox's state
    and the two servers' URLs."""
    sandbox = create_app(SandboxConfig(db=":memory:", clock=clock))
    with ExitStack() as stack:
        api = stack.enter_context(serve_in_thread(sandbox))
        bases = []
        for name in ("a", "b"):
            settings = Settings.load(
                environ={},
                base_url=api,
                state_dir=tmp_path / name,
                require_key=False,
                redis_url=redis_url,
            )
            hosted = HostedOptions(
                auth="per-user",
                public_url="http://127.0.0.1",
                stream=StreamOptions(poll_seconds=0.02),
            )
            server = build_server(settings, stdio=False, hosted=hosted, clock=SandboxTime(clock))
            app = build_http_app(server, kind="http", host="127.0.0.1")
            bases.append(stack.enter_context(serve_in_thread(app, path="", lifespan=True)))
        yield sandbox.state.sandbox, bases[0], bases[1]


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_sync_on_one_replica_reaches_the_other(tmp_path: Path, redis_url: str) -> None:
    legacy_updates: list[str] = []
    legacy_updated = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            legacy_updates.append(str(message.params.uri))
            legacy_updated.set()

    with _replicas(tmp_path, redis_url, ManualClock(NOW)) as (sandbox, a, b):
        async with (
            Client(http_transport(a, DEMO_KEY)) as on_a,
            Client(http_transport(b, DEMO_KEY), mode="auto") as on_b,
            Client(http_transport(b, SECOND_PRO_KEY), mode="auto") as stranger_on_b,
            Client(
                http_transport(b, DEMO_KEY), mode="legacy", message_handler=on_message
            ) as legacy_on_b,
        ):
            await legacy_on_b.session.subscribe_resource(RECENT)
            good = await _good_connection(on_a)
            async with (
                on_b.listen(resource_subscriptions=[RUNS]) as listener,
                stranger_on_b.listen(resource_subscriptions=[RUNS, RECENT]) as stranger,
            ):
                done = data_of(await on_a.call_tool("trigger_sync", {"connection": good}))
                assert done["outcome"] == "done"
                assert await _next_event(listener) == ResourceUpdated(uri=RUNS)
                with anyio.fail_after(5):
                    await legacy_updated.wait()
                assert set(legacy_updates) == {RECENT}  # what it subscribed to, nothing else
                # Another user on the same replica hears nothing of it.
                with anyio.move_on_after(0.3):
                    leaked = await stranger.__anext__()
                    raise AssertionError(f"another user's listener got {leaked}")

            # B never saw the sync, yet serves it: its runs and events come from Redis.
            runs = (await _read(on_b, RUNS))["runs"]
            assert runs[0]["run_id"] == done["run_id"]
            assert (runs[0]["stage"], runs[0]["imported"]) == ("completed", done["imported"])
            events = [
                e for e in (await _read(on_b, RECENT))["events"] if e["run_id"] == done["run_id"]
            ]
            assert [e["stage"] for e in reversed(events)] == ["queued", "started", "completed"]
            assert (await _read(stranger_on_b, RUNS))["runs"] == []

            # The shared cooldown: B does not send a second sync inside A's 20 s.
            again = data_of(await on_b.call_tool("trigger_sync", {"connection": good}))
            assert again["outcome"] == "cooling_down"
            assert 0 < again["retry_after_seconds"] <= 25
            sent = [r for r in sandbox.request_log if r.path.endswith(f"/{good}/sync")]
            assert len(sent) == 1  # refused by the shared cooldown, not by the API

        # B's /sync/stream replays from a Last-Event-ID that A's sync produced.
        queued_seq = events[-1]["seq"]
        headers = {"Authorization": f"Bearer {DEMO_KEY}", "Last-Event-ID": str(queued_seq)}
        lines: list[str] = []
        async with (
            httpx2.AsyncClient(timeout=10, verify=TLS) as http,
            http.stream("GET", f"{b}/sync/stream", headers=headers) as resp,
        ):
            assert resp.status_code == 200
            with anyio.fail_after(5):
                async for line in resp.aiter_lines():
                    lines.append(line)
                    if line.startswith("data:") and '"completed"' in line:
                        break
        ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
        replayed = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
        assert [e["stage"] for e in replayed] == ["started", "completed"]
        assert {e["run_id"] for e in replayed} == {done["run_id"]}
        assert ids == sorted(ids)
        assert ids[0] > queued_seq


# --- Redis restarted under two running servers -----------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own (the session's is shared), persisting every write, so
    it can be killed and started again on the same port with its data."""
    server = RedisServer(persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _server(tmp_path: Path, name: str, app: Any, redis_url: str, clock: ManualClock) -> Any:
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY},
        base_url=SANDBOX_URL,
        state_dir=tmp_path / name,
        redis_url=redis_url,
    )
    return build_server(settings, transport=SandboxTransport(app), clock=SandboxTime(clock))


async def test_redis_restarted_mid_run(
    tmp_path: Path,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradavity_mcp.sync")
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    a = _server(tmp_path, "a", app, own_redis.url, clock)
    b = _server(tmp_path, "b", app, own_redis.url, clock)
    async with (
        Client(a, mode="auto") as on_a,
        Client(b, mode="auto") as on_b,
        on_a.listen(resource_subscriptions=[RUNS]) as heard_on_a,
        on_b.listen(resource_subscriptions=[RUNS]) as heard_on_b,
    ):
        good = await _good_connection(on_a)
        runs = [data_of(await on_a.call_tool("trigger_sync", {"connection": good}))["run_id"]]
        for sub in (heard_on_a, heard_on_b):
            assert await _next_event(sub) == ResourceUpdated(uri=RUNS)

        own_redis.stop()
        clock.advance(21)  # past the cooldown
        # Redis is away: the sync still runs (the API keeps its own cooldown) and its
        # events wait in A until Redis is back.
        runs.append(data_of(await on_a.call_tool("trigger_sync", {"connection": good}))["run_id"])
        own_redis.start()
        for sub in (heard_on_a, heard_on_b):  # the events written late still arrive
            assert await _next_event(sub) == ResourceUpdated(uri=RUNS)

        clock.advance(21)
        runs.append(data_of(await on_b.call_tool("trigger_sync", {"connection": good}))["run_id"])
        for sub in (heard_on_a, heard_on_b):
            assert await _next_event(sub) == ResourceUpdated(uri=RUNS)

        for client in (on_a, on_b):
            events = list(reversed((await _read(client, f"{RECENT}?limit=100"))["events"]))
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs))  # unique, in order
            mine = [(e["run_id"], e["stage"]) for e in events if e["run_id"] in runs]
            assert mine == [(r, s) for r in runs for s in ("queued", "started", "completed")]
            assert [r["run_id"] for r in (await _read(client, RUNS))["runs"]] == runs[::-1]

    outages = [r for r in caplog.records if r.getMessage().startswith(OUTAGE)]
    assert len(outages) == 2  # once for each server, not once per failed call
    assert all(r.levelno == logging.WARNING for r in outages)


# --- retention --------------------------------------------------------------------------


async def test_events_older_than_a_day_are_trimmed(tmp_path: Path, redis_url: str) -> None:
    clock = ManualClock(NOW)
    app = create_app(SandboxConfig(db=":memory:", clock=clock))
    server: TradavityServer = _server(tmp_path, "a", app, redis_url, clock)
    async with Client(server) as client:
        good = await _good_connection(client)
        first = data_of(await client.call_tool("trigger_sync", {"connection": good}))["run_id"]
        state = server.backend.state
        assert state is not None
        assert state.default is not None
        monitor = state.default.sync
        # A busy day of scheduled syncs, as the platform's log would report them.
        rows = [
            {
                "log_id": 10_000 + i,
                "connection_id": good,
                "trigger": "schedule",
                "status": "success",
            }
            for i in range(250)
        ]
        assert monitor.ingest_log(rows, {}) == 250
        stream = f"tradavity:sync:{{{state.default.principal}}}:events"
        with redis.Redis.from_url(redis_url) as plain:
            # A flush waits a few seconds at most; on a busy machine 250 appends take
            # longer: wait for the count, not the clock.
            with anyio.fail_after(120):
                while plain.xlen(stream) < 253:
                    await monitor.flush()
            assert plain.xlen(stream) == 253

            clock.advance(24 * 3600 + 60)
            later = await client.call_tool("trigger_sync", {"connection": good})
            later_run = data_of(later)["run_id"]
            # Appending trimmed what was older than 24 h (whole nodes: approximately).
            assert plain.xlen(stream) < 100

        events = (await _read(client, f"{RECENT}?limit=200"))["events"]
        assert {e["run_id"] for e in events} == {later_run}
        runs = (await _read(client, f"{RUNS}?limit=200"))["runs"]
        assert [r["run_id"] for r in runs] == [later_run]
        assert first not in json.dumps(runs)


# --- the bus on its own ------------------------------------------------------------------


@asynccontextmanager
async def _hub(redis_url: str, clock: ManualClock | None = None) -> AsyncIterator[RedisSync]:
    client = open_redis(redis_url)
    hub = RedisSync(client, clock=(clock or ManualClock()).now)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run)
            await anyio.sleep(0.1)  # subscribed
            yield hub
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()


class Heard(Generic[T]):
    """What a listener got, and a way to wait for more."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._more = anyio.Event()

    def __call__(self, item: T) -> None:
        self.items.append(item)
        self._more.set()

    async def at_least(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.items) < count:
                self._more = anyio.Event()
                await self._more.wait()


def _listen_as(hub: RedisSync, principal: str) -> Heard[ServerEvent]:
    """A listen stream's listener, filed (as the bus does) under the principal of the
    request that subscribes it."""
    heard = Heard[ServerEvent]()
    token = CURRENT_WORKSPACE.set(cast(Workspace, SimpleNamespace(principal=principal)))
    try:
        hub.bus.subscribe(heard)
    finally:
        CURRENT_WORKSPACE.reset(token)
    return heard


async def test_the_bus_reaches_every_replica_and_only_the_principal(redis_url: str) -> None:
    async with _hub(redis_url) as one, _hub(redis_url) as two:
        alice_on_two, bob_on_two = _listen_as(two, "p_alice"), _listen_as(two, "p_bob")
        alice_on_one = _listen_as(one, "p_alice")

        await one.bus.publish_to("p_alice", ResourceUpdated(uri=RUNS))
        await one.bus.publish(ToolsListChanged())
        await alice_on_two.at_least(2)
        await alice_on_one.at_least(2)
        await bob_on_two.at_least(1)
        await anyio.sleep(0.1)  # anything more would have come by now
        assert alice_on_two.items == [ResourceUpdated(uri=RUNS), ToolsListChanged()]
        assert alice_on_one.items == [ResourceUpdated(uri=RUNS), ToolsListChanged()]
        assert bob_on_two.items == [ToolsListChanged()]


async def test_a_replica_that_stopped_listening_hears_what_it_missed(redis_url: str) -> None:
    clock = ManualClock(NOW)
    async with _hub(redis_url, clock) as one:
        two = RedisSync(open_redis(redis_url), clock=clock.now)
        heard = Heard[SyncEvent]()
        two.monitor("p_alice").subscribe(heard)
        writer = one.monitor("p_alice")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(two.run)
                await anyio.sleep(0.1)  # subscribed
                run = writer.start_manual(7, "tradovate")
                await heard.at_least(1)
                tg.cancel_scope.cancel()  # two stops listening...
            writer.started(run)
            writer.completed(run, {"imported": 1})
            await writer.flush()
            assert len(heard.items) == 1
            async with anyio.create_task_group() as tg:
                tg.start_soon(two.run)  # ...and listens again
                await heard.at_least(3)
                await anyio.sleep(0.1)  # anything more would have come by now
                tg.cancel_scope.cancel()
        finally:
            await two.redis.aclose()
    assert [e.stage for e in heard.items] == ["queued", "started", "completed"]
    seqs = [e.seq for e in heard.items]
    assert seqs == sorted(set(seqs))
