"""The ledger and the call rules, without an API: identity, twins, leases, steps, windows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tradavity_mcp.api.errors import error_for
from tradavity_mcp.server.errors import StepFailed, UserError
from tradavity_mcp.server.writes.call import (
    CALL_ID_META_KEY,
    REPLAY_WINDOW_SECONDS,
    CallId,
    Pending,
    WriteCall,
    WriteKind,
    resolve_call_id,
)
from tradavity_mcp.server.writes.ledger import (
    CallDraft,
    Ledger,
    LedgerUnavailable,
    canonical_json,
    digest_arguments,
)

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _call(
    ledger: Ledger,
    clock: Clock,
    args: dict[str, Any],
    call_id: str | None = None,
    *,
    kind: WriteKind = "creates",
    source: str = "host",
    tool: str = "create_trade",
) -> WriteCall:
    ident = CallId(call_id, source) if call_id else CallId(f"none:{os.urandom(8).hex()}", "none")  # type: ignore[arg-type]
    return WriteCall(
        ledger=ledger,
        principal="p",
        tool=tool,
        call_id=ident,
        arguments=args,
        clock=clock,
        kind=kind,
        target="trade:1" if kind == "sets" else None,
    )


def _body(
    counter: list[str], result: dict[str, Any] | None = None, delay: float = 0
) -> Callable[[WriteCall], Awaitable[dict[str, Any]]]:
    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> dict[str, Any]:
            await anyio.sleep(delay)
            counter.append(key)
            return result or {"n": len(counter)}

        return {"trade": await call.step("create", send)}

    return body


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical_json(
        {"a": [1, {"x": 1, "y": 2}], "b": 1}
    )
    assert digest_arguments({"a": 1}) != digest_arguments({"a": 2})


def test_call_identity_strongest_first() -> None:
    host = resolve_call_id({"claudecode/toolUseId": "toolu_1", CALL_ID_META_KEY: "note-9"})
    assert host == CallId("host:claudecode/toolUseId:toolu_1", "host")
    assert resolve_call_id({"vscode.requestId": "r-7"}) == CallId(
        "host:vscode.requestId:r-7", "host"
    )
    assert resolve_call_id({"callId": "c-1"}) == CallId("host:callId:c-1", "host")
    # A top-level callId in the request's params (some Codex builds).
    assert resolve_call_id({}, {"name": "x", "callId": "c-2"}) == CallId("host:callId:c-2", "host")
    assert resolve_call_id({CALL_ID_META_KEY: "note-9"}) == CallId("meta:note-9", "meta")
    # No identity at all, and nothing that merely looks like one.
    assert resolve_call_id(None) is None
    assert resolve_call_id({"progressToken": 5, "callId": True, CALL_ID_META_KEY: " "}) is None


async def test_a_done_call_replays_forever_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    clock, sent = Clock(), list[str]()
    first = await _call(Ledger(path, clock=clock), clock, {"x": 1}, "host:a").run(_body(sent))
    assert first == ("done", {"trade": {"n": 1}})
    clock.now += 30 * 86400 - 1  # a month later, another process
    again = await _call(Ledger(path, clock=clock), clock, {"x": 1}, "host:a").run(_body(sent))
    assert again == ("replayed", {"trade": {"n": 1}})
    assert len(sent) == 1
    with pytest.raises(UserError, match="other arguments"):
        await _call(Ledger(path, clock=clock), clock, {"x": 2}, "host:a").run(_body(sent))


async def test_creating_twins_inside_the_window_write_once() -> None:
    clock, sent = Clock(), list[str]()
    ledger = Ledger(":memory:", clock=clock)
    outcome, _ = await _call(ledger, clock, {"x": 1}, source="none").run(_body(sent))
    assert outcome == "done"
    clock.now += 599
    twin, data = await _call(ledger, clock, {"x": 1}, source="none").run(_body(sent))
    assert twin == "suspected_duplicate"
    assert data["trade"] == {"n": 1}
    assert data["twin_created_at"] == clock.now - 599
    # The same under another host id: held back too, and that id replays the answer.
    host = await _call(ledger, clock, {"x": 1}, "host:b").run(_body(sent))
    assert host[0] == "suspected_duplicate"
    assert (await _call(ledger, clock, {"x": 1}, "host:b").run(_body(sent)))[0] == (
        "suspected_duplicate"
    )
    # Asked for on purpose: written.
    assert (await _call(ledger, clock, {"x": 1}, source="none").run(
        _body(sent), allow_duplicate=True
    ))[0] == "done"  # fmt: skip
    # Past the window: a new write.
    clock.now += 601
    assert (await _call(ledger, clock, {"x": 1}, source="none").run(_body(sent)))[0] == "done"
    assert len(sent) == 3


async def test_state_setting_calls_without_an_id_always_apply() -> None:
    clock, sent = Clock(), list[str]()
    ledger = Ledger(":memory:", clock=clock)
    for _ in range(3):
        outcome, _ = await _call(ledger, clock, {"grade": "B"}, kind="sets", source="none").run(
            _body(sent)
        )
        assert outcome == "done"
    assert len(sent) == 3
    assert len(set(sent)) == 3  # each invocation its own key


async def test_concurrent_twins_wait_for_the_first_however_long(tmp_path: Path) -> None:
    """Two identical calls at once, through two connections to one file (as two
    processes would): one write; the other waits out a slow first call."""
    clock, sent = Clock(), list[str]()
    path = tmp_path / "ledger.sqlite3"
    ledgers = [Ledger(path, clock=clock), Ledger(path, clock=clock)]
    outcomes: list[str] = []

    async def one(i: int, ident: str | None) -> None:
        call = _call(ledgers[i % 2], clock, {"x": 1}, ident, source="host" if ident else "none")
        outcomes.append((await call.run(_body(sent, delay=0.3)))[0])

    async with anyio.create_task_group() as tg:
        for i, ident in enumerate([None, None, "host:r1", "host:r2"]):
            tg.start_soon(one, i, ident)
    assert len(sent) == 1
    assert sorted(outcomes) == ["done", *["suspected_duplicate"] * 3]


async def test_a_pending_call_resumes_with_its_key_and_its_recorded_request() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)
    builds: list[int] = []
    sent: list[tuple[str, Any]] = []
    fail = [True]

    async def body(call: WriteCall) -> dict[str, Any]:
        async def build() -> dict[str, Any]:
            builds.append(1)
            return {"at": clock.now}  # "now", resolved once

        async def send(key: str, request: Any) -> dict[str, Any]:
            sent.append((key, request))
            if fail[0]:
                raise Pending("create", "dropped")
            return {"ok": True}

        return {"trade": await call.write("create", send, build=build)}

    first = await _call(ledger, clock, {"trade_date": "now"}, source="none").run(body)
    assert first[0] == "pending"
    clock.now += 70
    fail[0] = False
    # The identical call (a host's retry under a new id) finishes the first one.
    again = await _call(ledger, clock, {"trade_date": "now"}, "host:retry").run(body)
    assert again[0] == "suspected_duplicate"
    assert len(builds) == 1
    assert sent[0] == sent[1]  # same key, same resolved body
    assert ledger.pending_calls() == []


async def test_an_unknown_outcome_past_the_replay_window_is_looked_for() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)
    keys: list[str] = []
    found: list[Any] = [None]
    down = [True]

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str, request: Any) -> dict[str, Any]:
            keys.append(key)
            if down[0]:
                raise Pending("create", "outage")
            return {"sent": True}

        async def find(request: Any) -> Any:
            return found[0]

        return {"trade": await call.write("create", send, build=_const({"a": 1}), find=find)}

    assert (await _call(ledger, clock, {"x": 1}, "host:a").run(body))[0] == "pending"
    clock.now += REPLAY_WINDOW_SECONDS + 60
    down[0] = False
    found[0] = {"adopted": 7}
    outcome, data = await _call(ledger, clock, {"x": 1}, "host:a").run(body)
    assert (outcome, data) == ("done", {"trade": {"adopted": 7}})
    assert len(keys) == 1  # found: nothing re-sent

    # Not found: written once, under a key of its own (the old one may be reused by now).
    down[0] = True
    assert (await _call(ledger, clock, {"x": 2}, "host:b").run(body))[0] == "pending"
    clock.now += REPLAY_WINDOW_SECONDS + 60
    down[0], found[0] = False, None
    assert (await _call(ledger, clock, {"x": 2}, "host:b").run(body))[0] == "done"
    assert keys[-1] != keys[-2]


async def test_a_state_step_past_the_replay_window_is_not_resent() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)
    down = [True]

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> Any:
            if down[0]:
                raise Pending("update", "outage")
            return {"ok": 1}

        return {"r": await call.step("update", send)}

    assert (await _call(ledger, clock, {"g": "A"}, "host:u").run(body))[0] == "pending"
    clock.now += REPLAY_WINDOW_SECONDS + 1
    down[0] = False
    with pytest.raises(StepFailed, match="over 24 hours ago"):
        await _call(ledger, clock, {"g": "A"}, "host:u").run(body)


async def test_a_step_that_fails_for_good_is_not_retried() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)
    tries: list[int] = []

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> Any:
            tries.append(1)
            raise error_for(status=404, code="not_found", message="Trade not found.")

        return {"r": await call.step("tags", send)}

    with pytest.raises(StepFailed):
        await _call(ledger, clock, {"t": 404}, "host:x", kind="sets").run(body)
    # Nothing written: forgotten, so a corrected retry is fresh; nothing left pending.
    assert ledger.pending_calls() == []
    assert ledger.get_call("p", "create_trade", "host:x") is None
    assert tries == [1]


async def test_retryable_failure_after_the_clients_retries_is_pending() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> Any:
            raise error_for(status=500, code="internal_error", message="boom")

        return {"r": await call.step("create", send)}

    outcome, data = await _call(ledger, clock, {"x": 1}, "host:x").run(body)
    assert outcome == "pending"
    assert data["pending_step"] == "create"
    assert [c.call_id for c in ledger.pending_calls()] == ["host:x"]
    assert ledger.pending_calls()[0].owner is None  # the lease was given back


def test_a_lease_held_by_a_dead_process_is_free(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(tmp_path / "l.sqlite3", clock=clock)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead_owner = f"{Ledger.OWNER_PREFIX.split(':')[0]}:{proc.pid}:x"
    draft = CallDraft("p", "t", "c", args_digest="d", args_json="{}", id_source="host")
    claim = ledger.claim(draft, owner=dead_owner, lease_seconds=60)
    assert claim.kind == "new"
    assert not ledger.lease_alive(claim.record)
    mine = ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60)
    assert mine.kind == "resume"
    assert ledger.lease_alive(ledger.get_call("p", "t", "c"))  # type: ignore[arg-type]


async def test_finished_calls_keep_no_bytes_and_are_pruned() -> None:
    clock = Clock()
    ledger = Ledger(":memory:", clock=clock)
    blob = "A" * 100_000
    call = _call(ledger, clock, {"data": blob}, "host:s")
    call.stored = {"data": "sha256:... (not kept)"}

    async def body(c: WriteCall) -> dict[str, Any]:
        async def send(key: str, request: Any) -> Any:
            return {"id": 1}

        return {"r": await c.write("screenshot", send, build=_const({"bytes": blob}))}

    await call.run(body)
    record = ledger.get_call("p", "create_trade", "host:s")
    assert record is not None
    assert record.arguments == {"data": "sha256:... (not kept)"}
    step = ledger.get_step("p", "create_trade", "host:s", "screenshot")
    assert step is not None
    assert step.request is None
    clock.now += 31 * 86400
    assert ledger.prune(clock.now - 30 * 86400) == 1
    assert ledger.get_call("p", "create_trade", "host:s") is None


def test_a_v1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE calls (principal TEXT, tool TEXT, call_id TEXT, args_digest TEXT, "
        "args_json TEXT, id_source TEXT, state TEXT, result_json TEXT, created_at REAL, "
        "updated_at REAL, PRIMARY KEY (principal, tool, call_id));"
        "CREATE TABLE steps (principal TEXT, tool TEXT, call_id TEXT, step TEXT, idem_key TEXT, "
        "state TEXT, result_json TEXT, first_sent REAL, updated_at REAL, "
        "PRIMARY KEY (principal, tool, call_id, step));"
        "INSERT INTO calls VALUES ('p','t','c','d','{}','host','pending',NULL,1,1);"
    )
    db.close()
    ledger = Ledger(path)
    assert [c.call_id for c in ledger.pending_calls()] == ["c"]


def test_a_corrupt_ledger_is_refused_with_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(LedgerUnavailable) as info:
        Ledger(path)
    message = str(info.value)
    assert str(path) in message
    assert "damaged" in message
    assert "Move it aside" in message


def _const(value: Any) -> Callable[[], Awaitable[Any]]:
    async def build() -> Any:
        return value

    return build
