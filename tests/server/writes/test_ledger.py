"""The ledger's SQLite-only behaviour and the rules that need no store: call identity,
the file's faults and migration, a dead process's lease, the 24 h guard on a state step.

The call rules on every store (replay, twins, resumes, windows, pruning) are in
`test_ledger_backends.py`, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradavity_mcp.server.errors import StepFailed
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
from tradavity_mcp.server.writes.offload import AsyncLedger

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
        ledger=AsyncLedger(ledger),
        principal="p",
        tool=tool,
        call_id=ident,
        arguments=args,
        clock=clock,
        kind=kind,
        target="trade:1" if kind == "sets" else None,
    )


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical_json(
        {"a": [1, {"x": 1, "y": 2}], "b": 1}
    )
    assert digest_arguments({"a": 1}) != digest_arguments({"a": 2})


def test_long_strings_are_digested_in_slices_to_the_same_digest() -> None:
    """A chart's base64 is hashed where it lies, not dumped into one JSON text: the
    digest is the one of the whole canonical JSON, so calls recorded before still match
    (strings past one slice, escapes and non-ASCII across slice edges, two of them)."""
    chart = "iVBORw0KGgo" * 60_000
    odd = ('quote" back\\ é 漢 \n ' * 40_000)[:300_001]
    for arguments in (
        {"trade": {"symbol": "MES"}, "screenshot": {"data": chart, "filename": "c.png"}},
        {"a": [odd, {"b": chart}], "c": "short"},
        {"data": chart[:65_537]},
        ["x", chart],
    ):
        whole = hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()
        assert digest_arguments(arguments) == whole
    assert digest_arguments({"d": chart}) != digest_arguments({"d": chart[:-1] + "A"})


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
