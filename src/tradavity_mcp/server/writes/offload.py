"""The write ledger as the server uses it: every store call in a worker thread, never on
the event loop.

`Ledger` and `PgLedger` are synchronous: a call is a disk write (SQLite) or a network
round trip (PostgreSQL), and a claim may wait for another process's `BEGIN IMMEDIATE` or
another replica's advisory lock on the same principal (up to the store's lock timeout).
On the event loop, that wait would stall every other request of the process. `AsyncLedger`
runs each call with `anyio.to_thread.run_sync`, so the loop keeps serving while one call
waits.

* **Cancellation.** A call whose thread has started runs to its end: the task that
  awaits it waits for the thread (anyio's `abandon_on_cancel=False`) and is cancelled
  afterwards, so a transaction is never left half-done. What records an outcome
  (`finish_step`, `fail_step`, `finish_call`, `forget_call`, `release`) is shielded as
  well, so a cancellation arriving just before it still lets it be written, as the
  synchronous calls did. A claim, a read or a step's mark, cancelled before its
  thread starts, does nothing.
* **Threads.** Each store has a `CapacityLimiter` of its own (`STORE_THREADS`), not
  anyio's default one shared with everything else in the process: SQLite serializes its
  calls on one lock, PostgreSQL's pool has as many connections, and a store that waits
  must not take the threads other work needs.
* `new_owner` and `worker_ended` read no store and stay synchronous; `lease_alive` may
  ask PostgreSQL whether the owner's process is still connected, so it is offloaded like
  the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from ...api.clock import Now
from ...settings import Settings
from .ledger import CallDraft, CallRecord, CallState, Claim, Ledger, StepRecord, UploadLink
from .stores import open_ledger

__all__ = ["STORE_THREADS", "AsyncLedger", "Offload", "open_async_ledger"]

P = ParamSpec("P")
T = TypeVar("T")

#: Worker threads one store may use at once: as many as a PostgreSQL store's pool has
#: connections (SQLite's calls take one lock in turn); the rest wait as tasks.
STORE_THREADS = 4


class Offload:
    """Runs a store's synchronous calls in worker threads under the store's own limiter."""

    def __init__(self, tokens: int = STORE_THREADS) -> None:
        self.limiter = anyio.CapacityLimiter(tokens)

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a worker thread; once started, it finishes."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.limiter)

    async def shielded(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """As `__call__`, and started even when the caller is being cancelled (for what
        records an outcome: it must be written however the call ends)."""
        with anyio.CancelScope(shield=True):
            result = await self(fn, *args, **kwargs)
        return result


class AsyncLedger:
    """A `Ledger` (SQLite or `PgLedger`) whose store calls are awaited, off the loop."""

    def __init__(self, ledger: Ledger, *, tokens: int = STORE_THREADS) -> None:
        #: The synchronous ledger (for the CLI, doctor and the tests that want it).
        self.sync = ledger
        self._run = Offload(tokens)

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The store's own worker-thread tokens."""
        return self._run.limiter

    @property
    def path(self) -> str:
        """Where the ledger lives (a file, or the store's URL without its password)."""
        return self.sync.path

    async def aclose(self) -> None:
        await self._run.shielded(self.sync.close)

    # --- leases ---------------------------------------------------------------------------

    def new_owner(self) -> str:
        return self.sync.new_owner()

    def worker_ended(self, owner: str) -> None:
        self.sync.worker_ended(owner)

    async def lease_alive(self, record: CallRecord) -> bool:
        return await self._run(self.sync.lease_alive, record)

    # --- calls ---------------------------------------------------------------------------

    async def claim(
        self,
        draft: CallDraft,
        *,
        owner: str,
        lease_seconds: float,
        window: float | None = None,
    ) -> Claim:
        return await self._run(
            self.sync.claim, draft, owner=owner, lease_seconds=lease_seconds, window=window
        )

    async def get_call(self, principal: str, tool: str, call_id: str) -> CallRecord | None:
        return await self._run(self.sync.get_call, principal, tool, call_id)

    async def renew(
        self, principal: str, tool: str, call_id: str, owner: str, seconds: float
    ) -> bool:
        return await self._run(self.sync.renew, principal, tool, call_id, owner, seconds)

    async def release(self, principal: str, tool: str, call_id: str, owner: str) -> None:
        await self._run.shielded(self.sync.release, principal, tool, call_id, owner)

    async def finish_call(
        self,
        principal: str,
        tool: str,
        call_id: str,
        *,
        state: CallState,
        result: dict[str, Any] | None,
        outcome: str | None = None,
        stored_args: dict[str, Any] | None = None,
    ) -> None:
        await self._run.shielded(
            self.sync.finish_call,
            principal,
            tool,
            call_id,
            state=state,
            result=result,
            outcome=outcome,
            stored_args=stored_args,
        )

    async def forget_call(self, principal: str, tool: str, call_id: str) -> None:
        await self._run.shielded(self.sync.forget_call, principal, tool, call_id)

    async def blobs(self, principal: str, tool: str, call_id: str) -> dict[str, bytes]:
        return await self._run(self.sync.blobs, principal, tool, call_id)

    async def pending_calls(self, principal: str | None = None) -> list[CallRecord]:
        return await self._run(self.sync.pending_calls, principal)

    async def earlier_pending(
        self, principal: str, target: str, before: float, other_than: str
    ) -> list[CallRecord]:
        return await self._run(self.sync.earlier_pending, principal, target, before, other_than)

    async def prune(self, older_than: float) -> int:
        return await self._run(self.sync.prune, older_than)

    # --- steps ---------------------------------------------------------------------------

    async def get_step(
        self, principal: str, tool: str, call_id: str, step: str
    ) -> StepRecord | None:
        return await self._run(self.sync.get_step, principal, tool, call_id, step)

    async def mark_step_sent(
        self,
        principal: str,
        tool: str,
        call_id: str,
        step: str,
        idem_key: str,
        request: Any = None,
        *,
        resend: bool = False,
    ) -> StepRecord:
        return await self._run(
            self.sync.mark_step_sent,
            principal,
            tool,
            call_id,
            step,
            idem_key,
            request,
            resend=resend,
        )

    async def finish_step(
        self, principal: str, tool: str, call_id: str, step: str, result: Any
    ) -> None:
        await self._run.shielded(self.sync.finish_step, principal, tool, call_id, step, result)

    async def fail_step(
        self, principal: str, tool: str, call_id: str, step: str, error: str
    ) -> None:
        await self._run.shielded(self.sync.fail_step, principal, tool, call_id, step, error)

    async def steps(self, principal: str, tool: str, call_id: str) -> list[StepRecord]:
        return await self._run(self.sync.steps, principal, tool, call_id)

    # --- upload links --------------------------------------------------------------------

    async def open_upload(
        self,
        token_hash: str,
        principal: str,
        tool: str,
        call_id: str,
        trade_number: int,
        expires_at: float,
    ) -> None:
        await self._run(
            self.sync.open_upload, token_hash, principal, tool, call_id, trade_number, expires_at
        )

    async def upload_link(self, token_hash: str) -> UploadLink | None:
        return await self._run(self.sync.upload_link, token_hash)

    async def take_upload(self, token_hash: str, filename: str, data: bytes) -> UploadLink | None:
        return await self._run.shielded(self.sync.take_upload, token_hash, filename, data)


async def open_async_ledger(settings: Settings, *, clock: Now = time.time) -> AsyncLedger:
    """The server's ledger (`stores.open_ledger`), opened in a worker thread (connecting
    and migrating a PostgreSQL store is a round trip or several), ready to await."""
    opener = Offload(1)
    return AsyncLedger(await opener(open_ledger, settings, clock=clock))
