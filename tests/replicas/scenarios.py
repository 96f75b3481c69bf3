"""The replica scenarios that run both short (tests/replicas) and at full size
(`python -m tests.drills.run replicas`), and the checks every scenario shares."""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from typing import Any, cast

import anyio
import httpx2
from mcp import Client
from mcp.types import RequestParamsMeta

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.api.idempotency import principal_for_key
from tradavity_mcp.sandbox import FREE_KEY

from ..drills._kit import Plan
from ..kit import data_of, text_of
from ._harness import SandboxProcess, Sent, Setup, three_replicas


def host_id(value: str) -> RequestParamsMeta:
    """A host's tool-use id in `_meta`, as Claude Code sends it."""
    return cast(RequestParamsMeta, {"claudecode/toolUseId": value})


def trade(pnl: float, symbol: str = "MNQ") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "direction": "long",
        "net_pnl": pnl,
        "trade_date": "2026-11-20T09:31",
        "account": "Apex 50K",
    }


async def trades_by_pnl(sandbox: SandboxProcess, key: str, symbol: str) -> Counter[float]:
    async with sandbox.api_client(key) as api:
        return Counter([float(r.net_pnl or 0) async for r in api.iter_trades(symbol=symbol)])


def committed(sent: list[Sent], path_part: str = "") -> list[Sent]:
    return [s for s in sent if s.committed and path_part in s.path]


def assert_every_write_recorded(setup: Setup, key: str, sent: list[Sent]) -> None:
    """No write the API carried out that the ledger does not hold (it records each
    before sending; a call whose only write the API refused is forgotten, so a
    corrected retry starts afresh); no write carried out twice."""
    writes = [s for s in sent if s.write]
    assert all(s.idempotency_key for s in writes), [s for s in writes if not s.idempotency_key]
    recorded = setup.replicas.ledger_keys(key)
    assert [s for s in writes if s.status < 400 and s.idempotency_key not in recorded] == []
    twice = Counter(s.idempotency_key for s in writes if s.committed)
    assert [k for k, n in twice.items() if n > 1] == []


async def double_dispatch(setup: Setup, runs: int, *, lanes: int = 1) -> dict[str, Any]:
    """Each create_trade sent at once to two replicas under one host id (a host that
    re-sent before the first answer came), `runs` times; `lanes` such pairs in flight at
    a time. Run i goes to replicas i and i+1 (mod 3), so every pair of replicas meets."""
    key = setup.sandbox.new_key()
    _, mark = setup.sandbox.log_since()
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    n = len(setup.replicas)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            (await stack.enter_async_context(setup.replicas.client(key, pin=r)))[0]
            for r in range(n)
        ]

        async def one(client: Client, i: int) -> None:
            args = trade(1000 + i + 0.25, "MCL")
            result = await client.call_tool("create_trade", args, meta=host_id(f"toolu_dd{i}"))
            outcomes[str(data_of(result)["outcome"])] += 1

        async def lane(first: int) -> None:
            for i in range(first, runs, lanes):
                async with anyio.create_task_group() as pair:
                    pair.start_soon(one, clients[i % n], i)
                    pair.start_soon(one, clients[(i + 1) % n], i)

        async with anyio.create_task_group() as tg:
            for first in range(lanes):
                tg.start_soon(lane, first)
    seconds = time.perf_counter() - started
    counts = await trades_by_pnl(setup.sandbox, key, "MCL")
    expected = [1000 + i + 0.25 for i in range(runs)]
    sent, _ = setup.sandbox.log_since(mark)
    assert_every_write_recorded(setup, key, sent)
    return {
        "runs": runs,
        "doubled": sum(1 for p in expected if counts[p] > 1),
        "lost": sum(1 for p in expected if counts[p] == 0),
        "outcomes": dict(outcomes),
        "creates_sent": len(committed(sent, "/trades")),
        "seconds": round(seconds, 1),
    }


async def wait_for_writes(sandbox: SandboxProcess, since: int, path_part: str, n: int = 1) -> None:
    """Until the sandbox has carried out `n` writes to `path_part` (polling its log)."""
    with anyio.fail_after(20):
        while True:
            if len(committed(sandbox.log_since(since)[0], path_part)) >= n:
                return
            await anyio.sleep(0.02)


async def verify_whole(api: TradavityClient, plan: Plan, symbol: str, pnl: float) -> int:
    """The one trade at `pnl`, with its tags, one screenshot and one checklist."""
    rows = [r async for r in api.iter_trades(symbol=symbol)]
    assert [float(r.net_pnl or 0) for r in rows if r.net_pnl == pnl] == [pnl], "one trade"
    number = next(r.trade_number for r in rows if r.net_pnl == pnl)
    full = await api.get_trade(number)
    assert sorted(str(t.get("name")) for t in full.tags) == sorted(plan.tags)
    assert len(await api.list_screenshots(number)) == 1
    assert len(await api.list_protocol_responses(plan.protocol_id, trade_number=number)) == 1
    return number


async def kill_mid_journal(
    setup: Setup,
    run: int,
    *,
    landed: bool,
    victim: int = 0,
    survivor: int = 1,
) -> dict[str, Any]:
    """journal_trade on replica `victim`, SIGKILLed in the middle: once the trade exists
    and its tags, screenshot and checklist are on their way (`landed=False`: the sandbox
    holds each request 400 ms before looking at it, so they die with the replica), or
    once the sandbox has carried them out while their answers are held back (`landed`:
    the ledger never learns they landed). The host sends the same call (same id) again
    and it lands on replica `survivor`: one trade, its tags, one screenshot, one
    checklist. The survivor does not wait out the dead replica's lease (60 s): the
    replica's session lock left the store with it, so the call is finished while the
    lease would still stand. The victim is started again meanwhile."""
    key = setup.sandbox.new_key()
    replicas, sandbox = setup.replicas, setup.sandbox
    symbol, meta = "MYM", host_id(f"toolu_killed{run}")
    async with replicas.client(key, pin=survivor) as (again_client, _):
        plan = await Plan.discover(again_client)
        args = plan.arguments(run, symbol=symbol)
        _, mark = sandbox.log_since()
        if landed:
            sandbox.hold_answers(400)
        else:
            sandbox.set_faults("latency_ms=400")
        try:
            async with (
                replicas.client(key, pin=victim, http_timeout=5) as (doomed, _),
                anyio.create_task_group() as tg,
            ):

                async def doomed_call() -> None:
                    # Its answer never comes: the replica dies under it.
                    with contextlib.suppress(Exception):
                        await doomed.call_tool("journal_trade", args, meta=meta)

                tg.start_soon(doomed_call)
                if landed:  # the trade, then its three parts, carried out
                    await wait_for_writes(sandbox, mark, "/api/v1/", 4)
                else:
                    await wait_for_writes(sandbox, mark, "/trades")
                    await anyio.sleep(0.15)
                replicas.kill(victim)
                at_kill, _ = sandbox.log_since(mark)
                tg.cancel_scope.cancel()
        except* httpx2.TransportError:
            pass  # the doomed client's own transport, its server gone
        paths = [s.path for s in committed(at_kill)]
        assert paths[0] == "/api/v1/trades"
        # Mid-call: in flight, nothing but the trade had been answered; landed, all four
        # were carried out and the victim had the answer to the first only.
        assert len(paths) == (4 if landed else 1), paths
        await anyio.sleep(0.6)  # what was in flight to the sandbox lands (or not)
        sandbox.set_faults(None)
        sandbox.hold_answers(0)
        _, after_kill = sandbox.log_since()
        [(tool, _, owner, lease)] = replicas.pending_calls(key)
        assert tool == "journal_trade"
        assert owner
        assert lease
        landed_after_kill = len(committed(sandbox.log_since(mark)[0])) - len(paths)

        answer: dict[str, Any] = {}

        async def again() -> None:
            answer.update(data_of(await again_client.call_tool("journal_trade", args, meta=meta)))

        waited = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(again)
            # The victim comes back meanwhile (the other scenarios want every replica).
            await anyio.to_thread.run_sync(replicas.restart, victim)
        waited = time.perf_counter() - waited
        assert time.time() < lease, "finished only once the dead replica's lease ran out"
    # Finished by this call ("done"), or, on a slow machine, by the survivor's resumer
    # before this call reached it ("replayed"): either way one whole trade, checked below.
    assert answer["outcome"] in {"done", "replayed"}, answer
    async with sandbox.api_client(key) as api:
        number = await verify_whole(api, plan, symbol, 1000 + run + 0.25)
    assert answer["trade_number"] == number
    assert replicas.pending_calls(key) == []
    finish = [s for s in sandbox.log_since(after_kill)[0] if s.write]
    if landed:  # the survivor re-sent the three under their keys: answered, not redone
        assert [(s.replayed, s.status < 300) for s in finish] == [(True, True)] * 3, finish
    assert_every_write_recorded(setup, key, sandbox.log_since(mark)[0])
    return {
        "landed": landed,
        "parts_landed_after_the_kill": landed_after_kill,
        "parts_resent_and_replayed": sum(1 for s in finish if s.replayed),
        "parts_sent_fresh": sum(1 for s in finish if s.committed),
        "survivor_waited_s": round(waited, 1),
    }


async def drill(runs: int, kills: int, *, free_tier_calls: int = 0) -> dict[str, Any]:
    """The full-size version: three replicas, `runs` double dispatches one pair at a time,
    then `kills` mid-journal kills (parts landed, then in flight, in turn), each on the
    next replica and finished on the one after; then `free_tier_calls` calls on the free
    key flat out. The sandbox's rate windows are lifted tenfold but for the free key's
    (its per-key window stays 60 a minute: the pro plan's are lifted): they would pace
    the run, they are not what is measured there."""
    with three_replicas(rate_multiplier=10) as setup:
        dispatch = await double_dispatch(setup, runs)
        crashes = []
        for k in range(kills):
            victim = k % len(setup.replicas)
            survivor = (victim + 1) % len(setup.replicas)
            crashes.append(
                await kill_mid_journal(
                    setup,
                    k,
                    landed=k % 2 == 0,
                    victim=victim,
                    survivor=survivor,
                )
            )
        free = await free_tier(setup, free_tier_calls) if free_tier_calls else None
    return {"double_dispatch": dispatch, "kills": crashes, "free_tier": free}


async def free_tier(
    setup: Setup,
    calls: int,
    *,
    sessions: int = 6,
    give_up_after: float | None = None,
    until_ok: int | None = None,
    linger: float = 2.0,
) -> dict[str, Any]:
    """One free-tier key (60 requests a minute) driven flat out through every replica:
    `sessions` clients, their requests spread with no affinity, `calls` find_trades in
    all (one API request each). The short version stops on a count, not a clock: once
    `until_ok` calls were answered (most of the minute's budget), `linger` seconds more
    of the others pressing for slots, then the calls still waiting are abandoned; however
    slowly the machine sends, the window has been filled and pressed on.
    `give_up_after` seconds, the calls still waiting are abandoned all the same (with
    `until_ok`, only a guard against a hang). What the API saw of this key: its
    requests, the most in any 60 seconds, its 429s; and what reached the model."""
    key = FREE_KEY
    principal = principal_for_key(key)
    _, mark = setup.sandbox.log_since()
    done: Counter[str] = Counter()
    budget_used = anyio.Event()
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            (await stack.enter_async_context(setup.replicas.client(key)))[0]
            for _ in range(sessions)
        ]
        turns = iter(range(calls))

        async def flat_out(client: Client) -> None:
            for _ in turns:
                result = await client.call_tool("find_trades", {"limit": 5})
                done["error: " + text_of(result)[:80] if result.is_error else "ok"] += 1
                if until_ok is not None and done["ok"] >= until_ok:
                    budget_used.set()

        with anyio.move_on_after(give_up_after if give_up_after is not None else math.inf):
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(flat_out, client)
                if until_ok is not None:
                    await budget_used.wait()
                    await anyio.sleep(linger)
                    tg.cancel_scope.cancel()
    seconds = time.perf_counter() - started
    mine = [s for s in setup.sandbox.log_since(mark)[0] if s.principal == principal]
    times = sorted(s.t for s in mine if s.status != 429)  # what the API's window counted
    busiest = max((sum(1 for u in times[i:] if u < t + 60) for i, t in enumerate(times)), default=0)
    return {
        "calls": calls,
        "answered": dict(done),
        "requests": len(mine),
        "most_in_60_s": busiest,
        "429_at_api": sum(1 for s in mine if s.status == 429),
        "seconds": round(seconds, 1),
    }
