"""The ledger's rules on both stores: SQLite (a file) and PostgreSQL (a real server
started by the test session). Every scenario opens its ledgers through `store`, so a
"second process" or "restart" is a second connection to the same store."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import psycopg
import pytest

from tradavity_mcp.api.errors import APIConnectionError, error_for
from tradavity_mcp.server.errors import StepFailed, UserError
from tradavity_mcp.server.writes import store_pg
from tradavity_mcp.server.writes.call import (
    PENDING_LIMIT_SECONDS,
    REPLAY_WINDOW_SECONDS,
    CallId,
    Pending,
    WriteCall,
    WriteKind,
)
from tradavity_mcp.server.writes.ledger import CallDraft, Ledger, LedgerUnavailable
from tradavity_mcp.server.writes.offload import AsyncLedger
from tradavity_mcp.server.writes.store_pg import Connections, PgLedger, migrations, redact_url

from ...services import PostgresServer

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


Open = Callable[[Clock], Ledger]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """Opens a ledger (a new connection) on this test's store."""
    opened: list[Ledger] = []
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite3"

        def open_one(clock: Clock) -> Ledger:
            opened.append(Ledger(path, clock=clock))
            return opened[-1]
    else:
        url: str = request.getfixturevalue("postgres_url")

        def open_one(clock: Clock) -> Ledger:
            opened.append(PgLedger(url, clock=clock))
            return opened[-1]

    yield open_one
    for ledger in opened:
        ledger.close()


def _call(
    ledger: Ledger,
    clock: Clock,
    args: dict[str, Any],
    call_id: str | None = None,
    *,
    kind: WriteKind = "creates",
    source: str = "host",
) -> WriteCall:
    ident = CallId(call_id, source) if call_id else CallId(f"none:{os.urandom(8).hex()}", "none")  # type: ignore[arg-type]
    return WriteCall(
        ledger=AsyncLedger(ledger),
        principal="p",
        tool="create_trade",
        call_id=ident,
        arguments=args,
        clock=clock,
        kind=kind,
        target="trade:1" if kind == "sets" else None,
    )


def _body(counter: list[str], delay: float = 0) -> Callable[[WriteCall], Awaitable[dict[str, Any]]]:
    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> dict[str, Any]:
            await anyio.sleep(delay)
            counter.append(key)
            return {"n": len(counter)}

        return {"trade": await call.step("create", send)}

    return body


def _const(value: Any) -> Callable[[], Awaitable[Any]]:
    async def build() -> Any:
        return value

    return build


def _draft(call_id: str, **more: Any) -> CallDraft:
    fields: dict[str, Any] = {"args_digest": "d", "args_json": "{}", "id_source": "none"}
    fields.update(more)
    return CallDraft("p", "journal_trade", call_id, **fields)


async def test_a_done_call_replays_forever_and_after_a_restart(store: Open) -> None:
    clock, sent = Clock(), list[str]()
    first = await _call(store(clock), clock, {"x": 1}, "host:a").run(_body(sent))
    assert first == ("done", {"trade": {"n": 1}})
    clock.now += 30 * 86400 - 1  # a month later, another process
    again = await _call(store(clock), clock, {"x": 1}, "host:a").run(_body(sent))
    assert again == ("replayed", {"trade": {"n": 1}})
    assert len(sent) == 1
    with pytest.raises(UserError, match="other arguments"):
        await _call(store(clock), clock, {"x": 2}, "host:a").run(_body(sent))


async def test_creating_twins_inside_the_window_write_once(store: Open) -> None:
    clock, sent = Clock(), list[str]()
    ledger = store(clock)
    assert (await _call(ledger, clock, {"x": 1}, source="none").run(_body(sent)))[0] == "done"
    clock.now += 599
    twin, data = await _call(ledger, clock, {"x": 1}, source="none").run(_body(sent))
    assert (twin, data["trade"], data["twin_created_at"]) == (
        "suspected_duplicate",
        {"n": 1},
        clock.now - 599,
    )
    # Under a host id, on another connection: held back, and that id replays the answer.
    other = store(clock)
    assert (await _call(other, clock, {"x": 1}, "host:b").run(_body(sent)))[0] == (
        "suspected_duplicate"
    )
    assert (await _call(ledger, clock, {"x": 1}, "host:b").run(_body(sent)))[0] == (
        "suspected_duplicate"
    )
    assert (await _call(ledger, clock, {"x": 1}, source="none").run(
        _body(sent), allow_duplicate=True
    ))[0] == "done"  # fmt: skip
    clock.now += 601  # past the window: a new write
    assert (await _call(other, clock, {"x": 1}, source="none").run(_body(sent)))[0] == "done"
    assert len(sent) == 3


async def test_state_setting_calls_without_an_id_always_apply(store: Open) -> None:
    clock, sent = Clock(), list[str]()
    ledgers = [store(clock), store(clock)]
    for i in range(4):
        call = _call(ledgers[i % 2], clock, {"grade": "B"}, kind="sets", source="none")
        assert (await call.run(_body(sent)))[0] == "done"
    assert len(sent) == len(set(sent)) == 4  # each invocation its own key


async def test_concurrent_twins_through_two_connections_write_once(store: Open) -> None:
    clock, sent = Clock(), list[str]()
    ledgers = [store(clock), store(clock)]
    outcomes: list[str] = []

    async def one(i: int, ident: str | None) -> None:
        call = _call(ledgers[i % 2], clock, {"x": 1}, ident, source="host" if ident else "none")
        outcomes.append((await call.run(_body(sent, delay=0.3)))[0])

    async with anyio.create_task_group() as tg:
        for i, ident in enumerate([None, None, "host:r1", "host:r2"]):
            tg.start_soon(one, i, ident)
    assert len(sent) == 1
    assert sorted(outcomes) == ["done", *["suspected_duplicate"] * 3]


def test_twin_claims_from_threads_at_once_decide_one_new(store: Open) -> None:
    """Eight workers (eight connections, real threads) claim the identical call at the
    same moment, ten rounds: each round exactly one is new, the others see its twin."""
    clock = Clock()
    ledgers = [store(clock) for _ in range(8)]
    for round_ in range(10):
        barrier = threading.Barrier(len(ledgers))
        kinds: list[str] = []

        def claim(
            i: int,
            round_: int = round_,
            barrier: threading.Barrier = barrier,
            kinds: list[str] = kinds,
        ) -> None:
            ledger = ledgers[i]
            draft = CallDraft(
                "p", "create_trade", f"none:{round_}:{i}", args_digest=f"digest-{round_}",
                args_json="{}", id_source="none",
            )  # fmt: skip
            barrier.wait()
            claim = ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60, window=600)
            kinds.append(claim.kind)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(ledgers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(kinds) == ["new", *["twin"] * (len(ledgers) - 1)], kinds


async def test_a_pending_call_resumes_with_its_key_and_recorded_request(store: Open) -> None:
    clock = Clock()
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

    first = await _call(store(clock), clock, {"trade_date": "now"}, source="none").run(body)
    assert first[0] == "pending"
    clock.now += 70
    fail[0] = False
    other = store(clock)  # another replica takes the host's retry, under a new id
    again = await _call(other, clock, {"trade_date": "now"}, "host:retry").run(body)
    assert again[0] == "suspected_duplicate"
    assert len(builds) == 1
    assert sent[0] == sent[1]  # same key, same resolved body
    assert other.pending_calls() == []


async def test_an_unknown_outcome_past_the_replay_window_is_looked_for(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)
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
    down[0], found[0] = False, {"adopted": 7}
    assert await _call(ledger, clock, {"x": 1}, "host:a").run(body) == (
        "done",
        {"trade": {"adopted": 7}},
    )
    assert len(keys) == 1  # found: nothing re-sent
    down[0] = True
    assert (await _call(ledger, clock, {"x": 2}, "host:b").run(body))[0] == "pending"
    clock.now += REPLAY_WINDOW_SECONDS + 60
    down[0], found[0] = False, None
    assert (await _call(ledger, clock, {"x": 2}, "host:b").run(body))[0] == "done"
    assert keys[-1] != keys[-2]  # not found: written once, under a key of its own


async def test_a_step_that_fails_for_good_is_not_retried(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)
    tries: list[int] = []

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> Any:
            tries.append(1)
            raise error_for(status=404, code="not_found", message="Trade not found.")

        return {"r": await call.step("tags", send)}

    with pytest.raises(StepFailed):
        await _call(ledger, clock, {"t": 404}, "host:x", kind="sets").run(body)
    assert ledger.pending_calls() == []
    assert ledger.get_call("p", "create_trade", "host:x") is None
    assert tries == [1]


async def test_a_retryable_failure_is_left_pending_and_the_lease_given_back(
    store: Open,
) -> None:
    clock = Clock()
    ledger = store(clock)

    async def body(call: WriteCall) -> dict[str, Any]:
        async def send(key: str) -> Any:
            raise error_for(status=500, code="internal_error", message="boom")

        return {"r": await call.step("create", send)}

    outcome, data = await _call(ledger, clock, {"x": 1}, "host:x").run(body)
    assert (outcome, data["pending_step"]) == ("pending", "create")
    pending = store(clock).pending_calls()
    assert [c.call_id for c in pending] == ["host:x"]
    assert pending[0].owner is None


async def test_a_call_pending_past_the_limit_ends_saying_what_was_written(store: Open) -> None:
    """Still unconfirmed three days after it was made, a call is stopped at its next
    attempt: recorded as failed, with what was written and what never was confirmed;
    nothing is sent for it again."""
    clock = Clock()
    ledger = store(clock)
    sent: list[str] = []

    async def body(call: WriteCall) -> dict[str, Any]:
        async def create(key: str, request: Any) -> dict[str, Any]:
            sent.append("create")
            return {"trade_number": 41}

        async def tags(key: str, request: Any) -> dict[str, Any]:
            sent.append("tags")
            raise Pending("tags", "outage")

        async def look_for_tags(request: Any) -> Any:
            sent.append("look")  # past the replay window, looked for first: unreachable
            raise APIConnectionError("down")

        trade = await call.write("create", create, build=_const({"symbol": "MES"}))
        await call.write("tags", tags, build=_const({"tag_ids": [1]}), find=look_for_tags)
        return {"trade": trade}

    def again() -> WriteCall:
        return _call(ledger, clock, {"x": 1}, "host:old")

    assert (await again().run(body))[0] == "pending"
    clock.now += PENDING_LIMIT_SECONDS - 60
    assert (await again().run(body))[0] == "pending"  # not yet: tried, and kept
    assert sent == ["create", "tags", "look"]
    clock.now += 120
    with pytest.raises(UserError) as ended:
        await again().run(body)
    text = str(ended.value)
    assert "within 72 hours, so it was stopped" in text
    assert "Written: create (trade #41)." in text
    assert "never confirmed (it may or may not be in Tradavity): tags." in text
    record = ledger.get_call("p", "create_trade", "host:old")
    assert record is not None
    assert record.state == "failed"
    assert ledger.pending_calls() == []
    with pytest.raises(UserError) as replayed:
        await again().run(body)
    assert str(replayed.value) == text
    assert sent == ["create", "tags", "look", "look"]  # nothing asked after the end


async def test_a_call_that_never_wrote_is_forgotten_past_the_limit(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)

    async def body(call: WriteCall) -> dict[str, Any]:
        raise APIConnectionError("down")  # before the first write (looking names up)

    assert (await _call(ledger, clock, {"x": 1}, "host:never").run(body))[0] == "pending"
    clock.now += PENDING_LIMIT_SECONDS + 1
    with pytest.raises(UserError, match="Nothing was written; make the call again"):
        await _call(ledger, clock, {"x": 1}, "host:never").run(body)
    assert ledger.get_call("p", "create_trade", "host:never") is None


async def test_a_worker_whose_lease_was_taken_over_stops(store: Open) -> None:
    """A lease that ran out (its worker could not renew it in time) and was taken over:
    its first worker stops at its next renewal, before writing beside the second."""
    clock = Clock()
    first_ledger, second_ledger = store(clock), store(clock)
    gate = anyio.Event()
    sent: list[str] = []
    outcomes: dict[str, tuple[str, dict[str, Any]]] = {}

    def body(who: str) -> Callable[[WriteCall], Awaitable[dict[str, Any]]]:
        async def run(call: WriteCall) -> dict[str, Any]:
            async def send(key: str, request: Any) -> dict[str, Any]:
                sent.append(who)
                return {"trade_number": 7}

            if who == "first":
                await gate.wait()  # slow: the lease runs out meanwhile
            return {"trade": await call.write("create", send, build=_const({}))}

        return run

    first = _call(first_ledger, clock, {"x": 1}, "host:l")
    first.lease_seconds = 2.0  # renewed every half second

    first_ended = anyio.Event()

    async def run_first() -> None:
        outcomes["first"] = await first.run(body("first"))
        first_ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_first)
        with anyio.fail_after(20):
            while second_ledger.get_call("p", "create_trade", "host:l") is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        clock.now += 10  # its lease ran out, unrenewed
        outcomes["second"] = await _call(second_ledger, clock, {"x": 1}, "host:l").run(
            body("second")
        )
        with anyio.fail_after(20):  # a guard against hanging, not the measure
            await first_ended.wait()
        gate.set()
    assert outcomes["second"] == ("done", {"trade": {"trade_number": 7}})
    assert outcomes["first"][0] == "pending"
    assert outcomes["first"][1]["pending_step"] == "lease"
    assert sent == ["second"]


async def test_finished_calls_keep_no_bytes_and_are_pruned(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)
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
    clock.now += 29 * 86400
    assert ledger.prune(clock.now - 30 * 86400) == 0
    clock.now += 2 * 86400
    assert ledger.prune(clock.now - 30 * 86400) == 1
    assert ledger.get_call("p", "create_trade", "host:s") is None
    assert ledger.steps("p", "create_trade", "host:s") == []


def test_blobs_are_kept_only_while_the_call_is_unfinished(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)
    data = bytes(range(256)) * 40  # every byte value, NUL included
    draft = _draft("host:shot", id_source="host", blobs={"sha256:x": data})
    assert ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60).kind == "new"
    assert store(clock).blobs("p", "journal_trade", "host:shot") == {"sha256:x": data}
    ledger.finish_call("p", "journal_trade", "host:shot", state="done", result={"ok": 1})
    assert ledger.blobs("p", "journal_trade", "host:shot") == {}
    # A twin recorded for a host id keeps no bytes either.
    twin = _draft("host:again", id_source="host", blobs={"sha256:x": data})
    assert ledger.claim(twin, owner=ledger.new_owner(), lease_seconds=60, window=600).kind == (
        "twin"
    )
    assert ledger.blobs("p", "journal_trade", "host:again") == {}


def test_a_partial_trade_is_carried_on_without_its_failed_steps(store: Open) -> None:
    clock = Clock()
    ledger = store(clock)
    first = _draft("none:1", args_digest="d1", trade_digest="trade-1")
    assert ledger.claim(first, owner=ledger.new_owner(), lease_seconds=60, window=600).kind == (
        "new"
    )
    for step, key in (("create", "k1"), ("tags", "k2")):
        ledger.mark_step_sent("p", "journal_trade", "none:1", step, key, {"s": step})
    ledger.finish_step("p", "journal_trade", "none:1", "create", {"id": 9})
    ledger.fail_step("p", "journal_trade", "none:1", "tags", "no such tag")
    ledger.finish_call("p", "journal_trade", "none:1", state="done", result={}, outcome="partial")
    clock.now += 60
    other = store(clock)
    second = _draft("none:2", args_digest="d2", trade_digest="trade-1")
    claim = other.claim(second, owner=other.new_owner(), lease_seconds=60, window=600)
    assert claim.kind == "continue"
    assert claim.previous is not None
    assert claim.previous.call_id == "none:1"
    steps = {s.step: s for s in other.steps("p", "journal_trade", "none:2")}
    assert list(steps) == ["create"]
    assert (steps["create"].idem_key, steps["create"].result) == ("k1", {"id": 9})
    superseded = other.get_call("p", "journal_trade", "none:1")
    assert superseded is not None
    assert superseded.state == "superseded"


def test_a_review_forms_correction_carries_on_its_partial_at_any_age(store: Open) -> None:
    """Past the duplicate window a new call id with the same trade writes a new trade;
    a submit of the same review form (its id, a digest of other arguments) still
    carries on the form's partial: a form is one trade. Another form's does not."""
    clock = Clock()
    ledger = store(clock)
    form = "meta:form-" + "ab" * 16
    first = _draft(f"{form}:1a2b", args_digest="d1", trade_digest="trade-1", id_source="meta")
    assert ledger.claim(first, owner=ledger.new_owner(), lease_seconds=60, window=600).kind == (
        "new"
    )
    ledger.mark_step_sent("p", "journal_trade", f"{form}:1a2b", "create", "k1", {})
    ledger.finish_step("p", "journal_trade", f"{form}:1a2b", "create", {"id": 9})
    ledger.finish_call(
        "p", "journal_trade", f"{form}:1a2b", state="done", result={}, outcome="partial"
    )
    clock.now += 3600  # an hour later: far past the 10-minute window
    stranger = _draft("none:9", args_digest="d9", trade_digest="trade-1")
    other_form = _draft(
        "meta:form-" + "cd" * 16 + ":zz", args_digest="d8", trade_digest="trade-1", id_source="meta"
    )
    for draft in (stranger, other_form):
        claim = ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60, window=600)
        assert claim.kind == "new"
        ledger.finish_call("p", "journal_trade", draft.call_id, state="failed", result={})
    again = _draft(f"{form}:3c4d", args_digest="d2", trade_digest="trade-1", id_source="meta")
    claim = ledger.claim(again, owner=ledger.new_owner(), lease_seconds=60, window=600)
    assert claim.kind == "continue"
    assert claim.previous is not None
    assert claim.previous.call_id == f"{form}:1a2b"
    steps = {s.step: s for s in ledger.steps("p", "journal_trade", f"{form}:3c4d")}
    assert steps["create"].result == {"id": 9}


def test_a_live_lease_is_busy_and_an_expired_one_is_taken_over(store: Open) -> None:
    clock = Clock()
    a, b = store(clock), store(clock)
    draft = _draft("host:l", id_source="host")
    assert a.claim(draft, owner=a.new_owner(), lease_seconds=30).kind == "new"
    assert b.claim(draft, owner=b.new_owner(), lease_seconds=30).kind == "busy"
    clock.now += 31
    mine = b.new_owner()
    assert b.claim(draft, owner=mine, lease_seconds=30).kind == "resume"
    record = a.get_call("p", "journal_trade", "host:l")
    assert record is not None
    assert record.owner == mine
    assert a.lease_alive(record)


# --- PostgreSQL only -----------------------------------------------------------------------


def test_a_lease_of_a_dead_local_pid_still_holds_on_postgresql(postgres_url: str) -> None:
    """Across machines a pid means nothing: only expiry frees a lease."""
    clock = Clock()
    ledger = PgLedger(postgres_url, clock=clock)
    try:
        gone = f"{Ledger.OWNER_PREFIX.split(':')[0]}:999999999:x"
        draft = _draft("host:d", id_source="host")
        assert ledger.claim(draft, owner=gone, lease_seconds=60).kind == "new"
        assert ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60).kind == "busy"
    finally:
        ledger.close()


def test_a_lease_frees_at_once_when_its_owner_process_leaves_the_store(
    postgres_url: str,
) -> None:
    """Each process holds a session lock while it is connected: a replica that died (its
    connection closed, as PostgreSQL closes a SIGKILLed process's) holds no lease."""
    clock = Clock()
    a, b = PgLedger(postgres_url, clock=clock), PgLedger(postgres_url, clock=clock)
    try:
        draft = _draft("host:k", id_source="host")
        assert a.claim(draft, owner=a.new_owner(), lease_seconds=600).kind == "new"
        record = b.get_call(draft.principal, draft.tool, draft.call_id)
        assert record is not None
        assert b.lease_alive(record)  # A is connected: its lease holds
        assert b.claim(draft, owner=b.new_owner(), lease_seconds=600).kind == "busy"
        a.close()  # A's connections end, long before its lease would
        # PostgreSQL frees a session's locks as its backend exits, a moment after the close.
        deadline = time.monotonic() + 10
        while b.lease_alive(record) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not b.lease_alive(record)
        assert b.claim(draft, owner=b.new_owner(), lease_seconds=600).kind == "resume"
    finally:
        a.close()
        b.close()


def _after_a_restart(act: Callable[[], T]) -> T:
    """`act`, once more if it met a connection lost in the restart (that call fails
    plainly, and the next one connects again)."""
    try:
        return act()
    except LedgerUnavailable:
        return act()


def test_a_lease_holds_across_a_restart_of_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL restarts: every session lock is gone, the living replica's too. Its
    lease still holds (taken before the restart, and the other replica lost its own
    session); at its next renewal it takes its lock again, and only once it is really
    gone is the call free at once."""
    server = PostgresServer()
    server.start()
    clock = Clock()
    a = b = None
    try:
        url = server.database("ledger")
        a, b = PgLedger(url, clock=clock), PgLedger(url, clock=clock)
        draft = _draft("host:r", id_source="host")
        owner = a.new_owner()
        assert a.claim(draft, owner=owner, lease_seconds=600).kind == "new"
        server.restart()

        def claim_by_b() -> str:
            assert b is not None
            return b.claim(draft, owner=b.new_owner(), lease_seconds=600).kind

        assert _after_a_restart(claim_by_b) == "busy"
        # Past B's own grace, the lease taken before the restart still holds.
        monkeypatch.setattr(store_pg, "RECONNECT_GRACE_SECONDS", 0.0)
        assert claim_by_b() == "busy"
        # A renews: its lock is taken again, in a new session.
        assert _after_a_restart(lambda: a.renew("p", "journal_trade", "host:r", owner, 600))
        assert claim_by_b() == "busy"
        a.close()  # A is gone now: its lock goes with its session
        deadline = time.monotonic() + 10
        while (kind := claim_by_b()) == "busy" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert kind == "resume"
    finally:
        for ledger in (a, b):
            if ledger is not None:
                ledger.close()
        server.close()


def test_one_users_wait_on_a_lock_holds_one_connection_not_the_store(
    postgres_url: str,
) -> None:
    """Another replica holds user p's lock: p's claim waits, user q's goes through."""
    ledger = PgLedger(postgres_url, clock=Clock())
    waiting = threading.Event()
    outcome: list[str] = []

    def claim_for_p() -> None:
        waiting.set()
        draft = _draft("host:p", id_source="host")
        outcome.append(ledger.claim(draft, owner=ledger.new_owner(), lease_seconds=60).kind)

    try:
        with psycopg.connect(postgres_url, autocommit=True) as other, other.transaction():
            other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("tradavity-ledger:p",)
            )
            thread = threading.Thread(target=claim_for_p)
            thread.start()
            waiting.wait()
            for _ in range(1000):  # until p's claim is seen waiting on the lock
                row = other.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted"
                ).fetchone()
                if row is not None and row[0] == 1:
                    break
                time.sleep(0.01)
            q = CallDraft("q", "journal_trade", "host:q", "d", "{}", "host")
            assert ledger.claim(q, owner=ledger.new_owner(), lease_seconds=60).kind == "new"
            assert outcome == []  # p still waits
        thread.join(timeout=30)
        assert outcome == ["new"]
    finally:
        ledger.close()


def test_migrations_are_recorded_and_applied_once(postgres_url: str) -> None:
    shipped = migrations()
    assert [v for v, _, _ in shipped] == list(range(1, len(shipped) + 1))
    first = PgLedger(postgres_url)
    second = PgLedger(postgres_url)  # another replica starting: nothing applied again
    try:
        assert first.schema_version() == second.schema_version() == shipped[-1][0]
        with psycopg.connect(postgres_url) as db:
            rows = db.execute("SELECT version, name FROM schema_version ORDER BY 1").fetchall()
        assert rows == [(v, name) for v, name, _ in shipped]
    finally:
        first.close()
        second.close()


def test_an_unreachable_store_is_named_without_its_password() -> None:
    with socket_closed() as port:
        url = f"postgresql://trader:s3cr3t-pw@127.0.0.1:{port}/tradavity"
        with pytest.raises(LedgerUnavailable) as info:
            PgLedger(url, connect_timeout=2)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert f"postgresql://trader:***@127.0.0.1:{port}/tradavity" in message
    assert "cannot be reached" in message
    assert "TRADAVITY_STORE_URL" in message
    assert "Nothing was sent" in message
    assert redact_url("postgresql://h/db?user=u&password=pw") == (
        "postgresql://h/db?user=u&password=***"
    )


@pytest.mark.parametrize("checked", [True, False], ids=["idle-checked", "in-use"])
def test_a_lost_connection_is_opened_again(
    postgres_url: str, checked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection idle a while is checked before use: its loss costs nothing. One in
    use fails the call that meets the loss plainly (nothing decided) and takes the idle
    ones with it: the next call reconnects."""
    monkeypatch.setattr(Connections, "CHECK_AFTER_SECONDS", 0.0 if checked else float("inf"))
    clock = Clock()
    ledger = PgLedger(postgres_url, clock=clock)
    try:
        ledger.claim(_draft("host:c", id_source="host"), owner="o", lease_seconds=60)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name='tradavity-mcp' AND datname=current_database()"
            )
            for _ in range(500):  # until the backend has really gone
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name='tradavity-mcp' AND datname=current_database()"
                ).fetchone()
                if row is not None and row[0] == 0:
                    break
                time.sleep(0.01)
        if not checked:
            with pytest.raises(LedgerUnavailable, match="cannot be reached"):
                ledger.claim(_draft("host:d", id_source="host"), owner="o", lease_seconds=60)
            assert ledger.get_call("p", "journal_trade", "host:d") is None
        claim = ledger.claim(_draft("host:e", id_source="host"), owner="o", lease_seconds=60)
        assert claim.kind == "new"
        assert sorted(c.call_id for c in ledger.pending_calls()) == ["host:c", "host:e"]
    finally:
        ledger.close()


class socket_closed:
    """A loopback port nobody listens on."""

    def __enter__(self) -> int:
        import socket

        self._s = socket.socket()
        self._s.bind(("127.0.0.1", 0))
        return int(self._s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._s.close()
