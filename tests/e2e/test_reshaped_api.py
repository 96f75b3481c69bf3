"""Where the reference names no field, the server never goes quietly wrong (issue #26).

A reshaping transport sits between the server and the sandbox and changes one shape of
the sandbox's answers at a time (the key's scopes moved or gone, a list's wrapper
renamed, the auto-sync fields renamed). For each the server either works, or fails with
words naming what it could not read: never fewer tools, never a silent empty list, never
a tag created twice, never an expired connection shown as idle.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from mcp import Client

from tradavity_mcp.api import contract
from tradavity_mcp.sandbox import READONLY_KEY, SandboxTransport
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import SANDBOX_URL, SandboxTime, data_of, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio

#: (method, path pattern, change to the envelope's `data`)
Rule = tuple[str, str, Callable[[Any], Any]]


class Reshaping(httpx2.AsyncBaseTransport):
    """The sandbox over HTTP, with the `data` of matching answers rewritten."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *rules: Rule) -> None:
        self.inner = inner
        self.rules = rules

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        path = request.url.path.removeprefix("/api/v1")
        changes = [
            change
            for method, pattern, change in self.rules
            if request.method == method and re.fullmatch(pattern, path)
        ]
        if not changes:
            return response
        body = json.loads(await response.aread())
        if body.get("ok") and "data" in body:
            for change in changes:
                body["data"] = change(body["data"])
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx2.Response(response.status_code, headers=headers, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _move(source: str, target: str) -> Callable[[Any], Any]:
    """Rename a top-level key of `data`."""

    def change(data: Any) -> Any:
        data = dict(data)
        data[target] = data.pop(source)
        return data

    return change


@pytest.fixture(autouse=True)
def _fresh_misses() -> None:
    contract._MISSES.clear()


def _client(env: Env, *rules: Rule) -> Client:
    transport = Reshaping(SandboxTransport(env.app), *rules)
    server = build_server(env.settings, transport=transport, clock=SandboxTime(env.clock))
    return Client(server)


@pytest.fixture
async def plain(env: Env) -> AsyncIterator[Client]:
    async with _client(env) as c:
        yield c


async def _tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


# --- the key's scopes --------------------------------------------------------------------


def _scopes_top_level(data: Any) -> Any:
    key = dict(data["key"])
    return {**data, "key": key, "scopes": " ".join(key.pop("scopes"))}


def _scopes_gone(data: Any) -> Any:
    key = {k: v for k, v in data["key"].items() if k != "scopes"}
    return {**data, "key": key}


@pytest.mark.parametrize("change", [_scopes_top_level, _scopes_gone], ids=["moved", "absent"])
async def test_scopes_moved_or_absent_never_hide_a_tool(
    env: Env, plain: Client, change: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    everything = await _tool_names(plain)
    async with _client(env, ("GET", "/me", change)) as client:
        assert await _tool_names(client) == everything
        listed = await client.call_tool("find_trades", {"limit": 2})
        assert not listed.is_error, text_of(listed)
    said = [r.getMessage() for r in caplog.records if r.name == "tradavity_mcp.contract"]
    if change is _scopes_gone:
        assert len(said) == 1  # once, however many requests
        assert "did not say the key's scopes" in said[0]
        assert "me.scopes" in contract.misses()
    else:
        assert said == []


async def test_a_key_without_a_scope_still_hears_the_apis_403_when_scopes_are_unknown(
    env: Env,
) -> None:
    """Unknown scopes list every tool; a call the key may not make is answered by the API."""
    settings = Settings.load(
        environ={"TRADAVITY_API_KEY": READONLY_KEY},
        base_url=SANDBOX_URL,
        state_dir=env.settings.state_dir,
    )
    transport = Reshaping(SandboxTransport(env.app), ("GET", "/me", _scopes_gone))
    server = build_server(settings, transport=transport, clock=SandboxTime(env.clock))
    async with Client(server) as client:
        assert "create_trade" in await _tool_names(client)
        refused = await client.call_tool(
            "create_trade",
            {"trade_date": "2026-05-10T14:32:00Z", "symbol": "MNQ", "direction": "long",
             "net_pnl": 10, "account": "Apex 50K"},
        )  # fmt: skip
        assert refused.is_error
        assert "write:trades" in text_of(refused)


# --- list wrappers -----------------------------------------------------------------------


async def test_a_renamed_list_wrapper_is_read_and_said_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    async with _client(env, ("GET", "/tags", _move("tags", "results"))) as client:
        tags = data_of(await client.call_tool("lookup", {"name": "tags"}))
        names = {t["name"] for t in tags["items"]}
        assert "FOMO" in names
        env.sandbox.reset_counters()
        trade = data_of(
            await client.call_tool(
                "journal_trade",
                {"trade": {"trade_date": "2026-05-10T14:32:00Z", "symbol": "MNQ",
                           "direction": "long", "net_pnl": 48, "account": "Apex 50K"},
                 "tags": ["fomo"], "create_missing_tags": True},
            )
        )  # fmt: skip
    assert trade["steps"] == {"create": "done", "tags": "done"}, trade
    posted = [r for r in env.sandbox.request_log if r.method == "POST" and r.path.endswith("/tags")]
    assert posted == []  # FOMO was found, not created again
    said = [r.getMessage() for r in caplog.records if r.name == "tradavity_mcp.contract"]
    assert len(said) == 1
    assert "'results'" in said[0]


def _two_lists(data: Any) -> Any:
    return {"found": data["tags"], "suggested": [], "total_count": data.get("total_count")}


async def test_an_unreadable_list_is_an_error_naming_its_keys_and_creates_nothing(
    env: Env,
) -> None:
    async with _client(env, ("GET", "/tags", _two_lists)) as client:
        looked = await client.call_tool("lookup", {"name": "tags"})
        assert looked.is_error
        text = text_of(looked)
        assert "found, suggested, total_count" in text
        assert "GET /tags" in text
        env.sandbox.reset_counters()
        journaled = await client.call_tool(
            "journal_trade",
            {"trade": {"trade_date": "2026-05-10T14:32:00Z", "symbol": "MNQ",
                       "direction": "long", "net_pnl": 48, "account": "Apex 50K"},
             "tags": ["FOMO"], "create_missing_tags": True},
        )  # fmt: skip
    posted = [r for r in env.sandbox.request_log if r.method == "POST" and r.path.endswith("/tags")]
    assert posted == []  # never a second FOMO
    assert "GET /tags" in text_of(journaled)


# --- auto-sync fields --------------------------------------------------------------------


def _rename_connection_fields(data: Any) -> Any:
    def one(row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        row["state"] = row.pop("status")
        row["auth"] = row.pop("token_status")
        return row

    return {**data, "connections": [one(r) for r in data["connections"]]}


def _rename_log_ids(data: Any) -> Any:
    rows = [{("entry" if k == "log_id" else k): v for k, v in r.items()} for r in data["log"]]
    return {**data, "log": rows}


async def test_renamed_connection_fields_never_show_an_expired_connection_as_idle(
    env: Env, plain: Client
) -> None:
    before = {
        s["connection_id"]: s["state"]
        for s in data_of(await plain.call_tool("sync_status", {}))["connections"]
    }
    assert sorted(before.values()) == ["idle", "needs_reconnect"]
    rule = ("GET", "/autosync/connections", _rename_connection_fields)
    async with _client(env, rule) as client:
        statuses = data_of(await client.call_tool("sync_status", {}))["connections"]
    assert {s["state"] for s in statuses} == {"unknown"}
    for s in statuses:
        assert "no state this server can read" in s["reason"]
    assert "autosync.connection" in contract.misses()


async def test_log_rows_without_log_id_still_become_scheduled_runs(env: Env) -> None:
    env.clock.advance(31 * 60)
    async with _client(env, ("GET", "/autosync/log", _rename_log_ids)) as client:
        await client.call_tool("sync_status", {})
        runs = data_of(await client.call_tool("sync_status", {}))
        recent = await client.read_resource("tradavity://sync/runs?limit=50")
    listed = json.loads(recent.contents[0].text)["runs"]  # type: ignore[union-attr]
    assert len(listed) >= 4
    assert {r["source"] for r in listed} == {"schedule"}
    assert runs["connections"]
    assert "autosync.log_id" in contract.misses()


async def test_the_sandbox_shapes_hold_every_assumption(plain: Client) -> None:
    """Unreshaped, nothing is missed: the sandbox matches what the server reads."""
    await _tool_names(plain)
    await plain.call_tool("lookup", {"name": "tags"})
    await plain.call_tool("sync_status", {})
    assert contract.misses() == {}


# --- errors cached under an Idempotency-Key ---------------------------------------------


class CachedErrors(httpx2.AsyncBaseTransport):
    """An API that caches errors under the key, as some do: the first `POST /trades`
    under each key fails with a 500 (nothing written), and every later try under that key
    gets the same answer again, with the replay header or just the same request id."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, header: bool) -> None:
        self.inner = inner
        self.header = header
        self.cached: dict[str, int] = {}
        self.replays = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not request.url.path.endswith("/trades") or key is None:
            return await self.inner.handle_async_request(request)
        if key in self.cached and self.cached[key] == 0:
            return await self.inner.handle_async_request(request)
        if key in self.cached:
            self.replays += 1
        else:
            # Only the first key meets the cached error; a fresh key goes through.
            self.cached[key] = len(self.cached) + 1 if not self.cached else 0
            if self.cached[key] == 0:
                return await self.inner.handle_async_request(request)
        body = {
            "ok": False,
            "error": {"code": "internal_error", "message": "Unexpected server error."},
            "meta": {"request_id": f"req_cached{self.cached[key]:04d}"},
        }
        headers = {"x-idempotent-replay": "true"} if self.header and self.replays else {}
        return httpx2.Response(500, json=body, headers=headers)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("header", [True, False], ids=["replay-header", "same-request-id"])
async def test_a_cached_500_is_looked_past_at_once_and_the_trade_lands_once(
    env: Env, header: bool
) -> None:
    api = CachedErrors(SandboxTransport(env.app), header=header)
    server = build_server(env.settings, transport=api, clock=SandboxTime(env.clock))
    started = env.clock.now()
    trade = {"trade_date": "2026-05-10T14:32:00Z", "symbol": "MCL", "direction": "short",
             "net_pnl": 61.5, "account": "Apex 50K"}  # fmt: skip
    async with Client(server) as client:
        result = await client.call_tool("journal_trade", {"trade": trade, "tags": ["FOMO"]})
    data = data_of(result)
    assert data["steps"] == {"create": "done", "tags": "done"}, data
    assert api.replays >= 1  # the cached error was met, and looked past
    assert env.clock.now() - started < 60  # not the 23.5 h guard
    rows = (await env.api.list_trades(symbol="MCL")).items
    assert [(r.symbol, float(r.net_pnl or 0)) for r in rows].count(("MCL", 61.5)) == 1
