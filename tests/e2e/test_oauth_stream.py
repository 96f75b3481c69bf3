"""`/sync/stream` opened with an OAuth access token, over real loopback HTTP: it ends
soon after the token's grant is revoked, or the token expires, and not before. (The
test server checks a stream's token again every 0.2 s and beats every 0.2 s.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import psycopg
import pytest
from pydantic import SecretStr

from tradavity_mcp.sandbox import DEMO_KEY

from ..kit import TLS
from ..server.oauth.kit import Served, oauth_server, tokens_for

pytestmark = pytest.mark.anyio

ENDED = ": authorization ended"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with oauth_server(tmp_path) as s:
        yield s


@dataclass
class Reading:
    """An open stream's lines as they arrive, and when it ended (wall clock)."""

    lines: list[str] = field(default_factory=list)
    ended: anyio.Event = field(default_factory=anyio.Event)
    ended_at: float = 0.0
    #: Set (and replaced) at each line.
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.arrived.set()
        self.arrived = anyio.Event()

    def beats(self) -> int:
        return self.lines.count(": heartbeat")

    def last(self) -> str:
        return [line for line in self.lines if line][-1]

    async def until(self, done: Callable[[], bool], seconds: float = 10.0) -> None:
        with anyio.fail_after(seconds):
            while not done():
                await self.arrived.wait()


@asynccontextmanager
async def _reading(served: Served, bearer: str) -> AsyncIterator[Reading]:
    reading = Reading()
    headers = {"Authorization": f"Bearer {bearer}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, verify=TLS) as http,
        http.stream("GET", served.base + "/sync/stream", params={"replay": 0}) as resp,
    ):
        assert resp.status_code == 200

        async def read() -> None:
            async for line in resp.aiter_lines():
                reading.add(line)
            reading.ended_at = time.time()
            reading.ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await reading.until(lambda: ": connected" in reading.lines)
            try:
                yield reading
            finally:
                tg.cancel_scope.cancel()


async def _reopened(served: Served, bearer: str) -> int:
    """The status of a stream opened again with this bearer (closed once it answers)."""
    headers = {"Authorization": f"Bearer {bearer}"}
    async with (
        httpx2.AsyncClient(timeout=30, verify=TLS) as http,
        http.stream("GET", served.base + "/sync/stream", headers=headers) as resp,
    ):
        return resp.status_code


async def test_a_stream_ends_soon_after_its_grant_is_revoked_and_others_go_on(
    served: Served,
) -> None:
    async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
        revoked = await tokens_for(http, served, DEMO_KEY)
        kept = await tokens_for(http, served, DEMO_KEY)
        async with (
            _reading(served, revoked["access_token"]) as doomed,
            _reading(served, kept["access_token"]) as other,
            _reading(served, DEMO_KEY) as raw_key,
        ):
            # A second of beats: its token was checked again about five times, and stands.
            await doomed.until(lambda: doomed.beats() >= 5)
            assert not doomed.ended.is_set()
            resp = await http.post(
                served.base + "/revoke",
                data={"token": revoked["access_token"], "client_id": revoked["client_id"]},
            )
            assert resp.status_code == 200
            revoked_at = time.time()
            with anyio.fail_after(10):
                await doomed.ended.wait()
            assert doomed.last() == ENDED
            assert doomed.ended_at - revoked_at < 10
            # Another grant's stream, and one opened with the key itself, go on.
            other_beats, raw_beats = other.beats(), raw_key.beats()
            await other.until(lambda: other.beats() >= other_beats + 5)
            await raw_key.until(lambda: raw_key.beats() >= raw_beats + 5)
            assert not other.ended.is_set()
            assert not raw_key.ended.is_set()
            assert ENDED not in other.lines + raw_key.lines
        assert await _reopened(served, revoked["access_token"]) == 401
        assert await _reopened(served, kept["access_token"]) == 200


async def test_a_stream_ends_soon_after_its_token_expires_and_not_before(tmp_path: Path) -> None:
    # Long enough for the token to be fetched and the stream opened and beating before
    # it expires, even with both cores busy (at 2 s a loaded machine saw it expire first).
    ttl = 5.0
    with oauth_server(tmp_path, access_ttl=ttl) as served:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            before = time.time()
            got = await tokens_for(http, served, DEMO_KEY)
            async with _reading(served, got["access_token"]) as stream:
                with anyio.fail_after(ttl + 10):
                    await stream.ended.wait()
            assert stream.last() == ENDED
            assert stream.ended_at >= before + ttl
            assert stream.beats() >= 3, "it was open, beating, until then"
            assert await _reopened(served, got["access_token"]) == 401


async def test_while_the_store_is_unreachable_a_stream_goes_on_until_its_token_expires(
    tmp_path: Path, postgres_url: str, postgres_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A revocation is written to the store, so while the store cannot be reached there
    is none to see: the stream goes on (a store outage does not drop every stream), and
    still ends when its token expires."""
    ttl = 4.0
    secret = SecretStr("r" * 48)
    with oauth_server(
        tmp_path, store_url=postgres_url, secret_key=secret, access_ttl=ttl
    ) as served:
        async with httpx2.AsyncClient(timeout=30, verify=TLS) as http:
            before = time.time()
            got = await tokens_for(http, served, DEMO_KEY)
            async with _reading(served, got["access_token"]) as stream:
                with psycopg.connect(postgres_server, autocommit=True) as admin:
                    name = postgres_url.rpartition("/")[2]
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())
                with anyio.fail_after(ttl + 10):
                    await stream.ended.wait()
            assert stream.last() == ENDED
            assert stream.ended_at >= before + ttl
    assert "an open stream's token could not be checked again" in caplog.text
