"""The ledger: durable, per principal, refusing reuse of a call id with other arguments."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tradavity_mcp.ledger import Ledger, canonical_json, digest_arguments
from tradavity_mcp.server._calls import (
    CALL_ID_META_KEY,
    CallId,
    Pending,
    UserError,
    WriteCall,
    resolve_call_id,
)

pytestmark = pytest.mark.anyio


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical_json(
        {"a": [1, {"x": 1, "y": 2}], "b": 1}
    )
    assert digest_arguments({"a": 1}) != digest_arguments({"a": 2})


def test_calls_and_steps_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"
    ledger = Ledger(path)
    record, created = ledger.begin_call("p", "create_trade", "c1", {"x": 1}, id_source="host")
    assert created
    assert record.state == "pending"
    ledger.mark_step_sent("p", "create_trade", "c1", "create", "key-1")
    ledger.finish_step("p", "create_trade", "c1", "create", {"trade_number": 5})
    ledger.finish_call("p", "create_trade", "c1", state="done", result={"trade": 5})
    ledger.close()

    again = Ledger(path)
    record2, created2 = again.begin_call("p", "create_trade", "c1", {"x": 1}, id_source="host")
    assert not created2
    assert record2.state == "done"
    assert record2.result == {"trade": 5}
    step = again.get_step("p", "create_trade", "c1", "create")
    assert step is not None
    assert (step.state, step.idem_key, step.result) == ("done", "key-1", {"trade_number": 5})
    # Another principal never sees it.
    assert again.get_call("q", "create_trade", "c1") is None


def test_call_ids_in_order_of_preference() -> None:
    args = {"symbol": "MNQ"}
    host = resolve_call_id(
        {"claudecode/toolUseId": "toolu_1", CALL_ID_META_KEY: "note-9"}, "p", "t", args
    )
    assert (host.source, host.value) == ("host", "host:claudecode/toolUseId:toolu_1")
    vscode = resolve_call_id({"vscode.requestId": "r-7"}, "p", "t", args)
    assert vscode.source == "host"
    ours = resolve_call_id({CALL_ID_META_KEY: "note-9"}, "p", "t", args)
    assert (ours.source, ours.value) == ("meta", "meta:note-9")
    derived = resolve_call_id(None, "p", "t", args)
    assert derived.source == "derived"
    assert derived == resolve_call_id({}, "p", "t", {"symbol": "MNQ"})
    assert derived != resolve_call_id({}, "q", "t", args)
    assert derived != resolve_call_id({}, "p", "t", args, scope="2026-11-21")


def _call(ledger: Ledger, call_id: str, args: dict[str, object], source: str = "host") -> WriteCall:
    return WriteCall(
        ledger=ledger,
        principal="p",
        tool="create_trade",
        call_id=CallId(call_id, source),  # type: ignore[arg-type]
        arguments=dict(args),
    )


async def test_a_done_call_replays_without_running() -> None:
    ledger = Ledger(":memory:")
    runs = 0

    async def body(call: WriteCall) -> dict[str, object]:
        nonlocal runs
        runs += 1
        n = await call.step("create", lambda key: _const({"n": runs, "key": key}))
        return {"trade": n}

    first = await _call(ledger, "c", {"a": 1}).run(body)
    second = await _call(ledger, "c", {"a": 1}).run(body)
    assert first[0] == "done"
    assert second == ("replayed", first[1])
    assert runs == 1


async def test_same_call_id_with_other_arguments_is_refused() -> None:
    ledger = Ledger(":memory:")

    async def body(call: WriteCall) -> dict[str, object]:
        return {"ok": await call.step("create", lambda key: _const(1))}

    await _call(ledger, "c", {"a": 1}).run(body)
    with pytest.raises(UserError, match="other arguments"):
        await _call(ledger, "c", {"a": 2}).run(body)


async def test_double_dispatch_under_two_host_ids_returns_the_first_result() -> None:
    ledger = Ledger(":memory:")
    sent: list[str] = []

    async def body(call: WriteCall) -> dict[str, object]:
        async def send(key: str) -> str:
            sent.append(key)
            return key

        return {"key": await call.step("create", send)}

    first = await _call(ledger, "host-1", {"a": 1}).run(body)
    second = await _call(ledger, "host-2", {"a": 1}).run(body)
    assert second == ("suspected_duplicate", first[1])
    assert len(sent) == 1
    wanted = await _call(ledger, "host-3", {"a": 1}).run(body, allow_duplicate=True)
    assert wanted[0] == "done"
    assert len(sent) == 2


async def test_concurrent_double_dispatch_waits_for_the_first() -> None:
    ledger = Ledger(":memory:")
    sent: list[str] = []

    async def body(call: WriteCall) -> dict[str, object]:
        async def send(key: str) -> str:
            sent.append(key)
            await anyio.sleep(0.2)
            return key

        return {"key": await call.step("create", send)}

    results: list[tuple[str, dict[str, object]]] = []

    async def run(call_id: str, delay: float) -> None:
        await anyio.sleep(delay)
        results.append(await _call(ledger, call_id, {"a": 1}).run(body))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "host-1", 0)
        tg.start_soon(run, "host-2", 0.05)
    assert len(sent) == 1
    assert sorted(r[0] for r in results) == ["done", "suspected_duplicate"]
    assert results[0][1] == results[1][1]


async def test_unknown_outcome_stays_pending_and_resumes_with_the_same_key() -> None:
    from tradavity_mcp.errors import APIConnectionError

    ledger = Ledger(":memory:")
    keys: list[str] = []
    fail = True

    async def body(call: WriteCall) -> dict[str, object]:
        async def send(key: str) -> str:
            keys.append(key)
            if fail:
                raise APIConnectionError("dropped", outcome_unknown=True)
            return "ok"

        return {"r": await call.step("create", send)}

    outcome, data = await _call(ledger, "c", {"a": 1}).run(body)
    assert outcome == "pending"
    assert data["pending_step"] == "create"
    assert [c.call_id for c in ledger.pending_calls("p")] == ["c"]
    fail = False
    outcome, data = await _call(ledger, "c", {"a": 1}).run(body)
    assert (outcome, data) == ("done", {"r": "ok"})
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert ledger.pending_calls("p") == []


async def test_a_call_that_wrote_nothing_is_forgotten_on_failure() -> None:
    ledger = Ledger(":memory:")

    async def body(call: WriteCall) -> dict[str, object]:
        raise UserError("unknown account 'Apx'")

    with pytest.raises(UserError):
        await _call(ledger, "c", {"a": 1}).run(body)
    assert ledger.get_call("p", "create_trade", "c") is None


async def test_retryable_api_failure_after_retries_is_pending() -> None:
    from tradavity_mcp.errors import InternalError

    ledger = Ledger(":memory:")

    async def body(call: WriteCall) -> dict[str, object]:
        async def send(key: str) -> str:
            raise InternalError("boom", status=500, code="internal_error")

        return {"r": await call.step("create", send)}

    with pytest.raises(Pending):
        await _call(ledger, "c", {"a": 1}).step("create", lambda key: _raise_500())
    outcome, _ = await _call(ledger, "c2", {"a": 1}).run(body)
    assert outcome == "pending"


async def _raise_500() -> str:
    from tradavity_mcp.errors import InternalError

    raise InternalError("boom", status=500, code="internal_error")


async def _const(value: object) -> object:
    return value
