"""Reference data (accounts, tags, protocols, ...) kept for the process, and names resolved
to ids.

Users speak in names ("tag it FOMO", "the pre-trade checklist", "my Apex account"); the
API wants ids. Lookups are case-insensitive; a miss is a `UserError` that lists the
closest names, so the model can correct itself in one more call.

Each list is read once, every page of it, and kept for the life of the process; our own
writes invalidate what they change, so a tag we just created is visible at once. A name
or id that is not in the kept list triggers one refresh of that list before it is called
unknown, so something made elsewhere (in the app, by another session) is found, and an
existing tag is never created twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio

from ..api.client import TradavityClient
from ..api.errors import TradavityError
from ..api.models import Account, AutosyncConnection, Me, Protocol, Strategy, Tag, TagCategory
from .errors import UserError
from .lookalike import misread

__all__ = ["RefData", "close_matches", "one_of"]

T = TypeVar("T")


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to `word`, compared case-insensitively."""
    by_fold: dict[str, str] = {}
    for c in candidates:
        by_fold.setdefault(c.casefold(), c)
    import difflib  # noqa: PLC0415 (only when a name is not found)

    hits = difflib.get_close_matches(word.casefold(), list(by_fold), n=n, cutoff=0.5)
    # Also catch prefixes/substrings that difflib scores low ("pre" -> "Pre-Trade ...").
    folded = word.casefold()
    extra = [f for f in by_fold if folded and (folded in f or f in folded) and f not in hits]
    return [by_fold[h] for h in (hits + extra)[:n]]


def one_of(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


_PLURAL = {"strategy": "strategies"}


def _miss(kind: str, word: str, names: Sequence[str]) -> UserError:
    near = close_matches(word, names)
    hint = f" Did you mean {one_of(near)}?" if near else ""
    kinds = _PLURAL.get(kind, kind + "s")
    known = f" Known {kinds}: {one_of(sorted(names))}." if names else f" There are no {kinds}."
    return UserError(f"unknown {kind} {word!r}.{hint}{known}")


logger = logging.getLogger("tradavity_mcp.refdata")


class RefData:
    """Per-principal reference lists, kept for the process, refreshed once on a miss."""

    def __init__(self, api: TradavityClient) -> None:
        self.api = api
        self._cache: dict[str, Any] = {}
        self._lock = anyio.Lock()
        self._fetching: dict[str, anyio.Event] = {}
        self._fetchers: dict[str, Callable[[], Awaitable[Any]]] = {}
        #: How many times each list was fetched (a miss's refresh included).
        self.fetches: dict[str, int] = {}

    async def _get(self, name: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """A kept list, fetched once however many ask for it at the same time (the parts
        of one journal_trade resolve their names concurrently)."""
        while True:
            async with self._lock:
                if name in self._cache:
                    hit: T = self._cache[name]
                    return hit
                running = self._fetching.get(name)
                if running is None:
                    self._fetching[name] = anyio.Event()
            if running is not None:
                await running.wait()  # then look again: it may have failed
                continue
            try:
                value = await fetch()
                self._cache[name] = value
                self._fetchers[name] = fetch
                self.fetches[name] = self.fetches.get(name, 0) + 1
                return value
            finally:
                self._fetching.pop(name).set()

    async def refresh(self) -> int:
        """Fetch every kept list again in place (the background refresh): nobody waits
        on a cold list, and names made elsewhere meanwhile are known. A list that cannot
        be fetched now keeps its old value. Returns how many were refreshed."""
        refreshed = 0
        for name, fetch in list(self._fetchers.items()):
            if name not in self._cache:
                continue  # invalidated: the next use fetches it
            try:
                self._cache[name] = await fetch()
            except TradavityError as exc:
                logger.info("could not refresh %s: %s", name, exc)
                continue
            self.fetches[name] = self.fetches.get(name, 0) + 1
            refreshed += 1
        return refreshed

    def invalidate(self, *names: str) -> None:
        """Forget kept lists (all of them when no name is given)."""
        if not names:
            self._cache.clear()
        for name in names:
            for key in [k for k in self._cache if k == name or k.startswith(name + ":")]:
                del self._cache[key]

    async def _twice(
        self, names: tuple[str, ...], find: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """`find()` over the kept lists; on a miss, refresh `names` once and look again."""
        found = await find()
        if found is None:
            self.invalidate(*names)
            found = await find()
        return found

    # --- kept lists ----------------------------------------------------------------------

    async def me(self) -> Me:
        return await self._get("me", self.api.me)

    async def all_accounts(self) -> list[Account]:
        """Every account, archived ones included (one read serves both views)."""
        return await self._get("accounts", lambda: self.api.list_accounts(include_archived=True))

    async def accounts(self) -> list[Account]:
        """The active accounts."""
        return [a for a in await self.all_accounts() if not a.is_archived]

    async def tags(self) -> list[Tag]:
        return await self._get("tags", self.api.list_tags)

    async def tag_categories(self) -> list[TagCategory]:
        return await self._get("tag_categories", self.api.list_tag_categories)

    async def protocols(self) -> list[Protocol]:
        return await self._get("protocols", self.api.list_protocols)

    async def protocol(self, protocol_id: int) -> Protocol:
        return await self._get(
            f"protocols:{protocol_id}", lambda: self.api.get_protocol(protocol_id)
        )

    async def strategies(self) -> list[Strategy]:
        return await self._get("strategies", self.api.list_strategies)

    async def strategy(self, strategy_id: int) -> Strategy:
        return await self._get(
            f"strategies:{strategy_id}", lambda: self.api.get_strategy(strategy_id)
        )

    async def emotions(self) -> list[str]:
        return await self._get("emotions", self.api.emotions)

    async def connections(self) -> list[AutosyncConnection]:
        return await self._get("connections", self.api.list_connections)

    # --- name resolution -----------------------------------------------------------------

    async def account(self, ref: str | int | None, *, include_archived: bool = False) -> Account:
        """An account by id or name (any case): an active one first.

        An archived account answers only with `include_archived` (reads: its trades still
        resolve) and only when no active account has that name or id; without it, naming
        an archived account says so. No `ref` means the only active account, if there is
        exactly one.
        """
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            only = await self._twice(("accounts",), self._single_active)
            if only is not None:
                return only
            names = one_of([a.account_name for a in await self.accounts()])
            raise UserError(f"which account? Pass account as a name or id: {names}")
        text = str(ref).strip()

        async def find() -> Account | None:
            return _match_account(await self.all_accounts(), text, archived=include_archived)

        found = await self._twice(("accounts",), find)
        if found is not None:
            return found
        active = await self.accounts()
        archived = _match_account(await self.all_accounts(), text, archived=True)
        if archived is not None:
            raise UserError(
                f"account {archived.account_name!r} is archived; unarchive it in Tradavity or "
                f"use an active account: {one_of([a.account_name for a in active])}"
            )
        raise _miss("account", text, [a.account_name for a in active])

    async def account_filter(self, ref: str | int | None) -> int | None:
        """The account id a read filter means: None for no filter; a name an active and an
        archived account share means the active one; an archived account only when no
        active one matches. Read tools pass this id (`account_id=`) instead of the name."""
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            return None
        return (await self.account(ref, include_archived=True)).id

    async def _single_active(self) -> Account | None:
        active = await self.accounts()
        return active[0] if len(active) == 1 else None

    def _tags_by_ref(
        self, tags: Sequence[Tag], refs: Sequence[str | int]
    ) -> tuple[list[Tag], list[str]]:
        by_id = {t.id: t for t in tags}
        by_name = {t.name.casefold(): t for t in tags}
        found: list[Tag] = []
        unknown: list[str] = []
        for ref in refs:
            text = str(ref).strip()
            tag = by_id.get(int(text)) if text.isdigit() else by_name.get(text.casefold())
            if tag is None and text.isdigit():
                tag = by_name.get(text.casefold())
            if tag is None:
                unknown.append(text)
            elif tag not in found:
                found.append(tag)
        return found, unknown

    async def resolve_tags(self, refs: Sequence[str | int]) -> tuple[list[Tag], list[str]]:
        """Tags by id or name (case-insensitive): (found, unknown names). Every page of the
        tag list is searched, and an unknown ref refreshes the list once before it stays
        unknown."""
        found, unknown = self._tags_by_ref(await self.tags(), refs)
        if unknown:
            self.invalidate("tags")
            found, unknown = self._tags_by_ref(await self.tags(), refs)
        return found, unknown

    def unknown_tags_error(self, unknown: Sequence[str], tags: Sequence[Tag]) -> UserError:
        names = [t.name for t in tags]
        parts = []
        for word in unknown:
            why = misread(word, names)
            near = close_matches(word, names)
            if why is not None:
                parts.append(f"{word!r} ({why})")
            else:
                parts.append(f"{word!r}" + (f" (did you mean {one_of(near)}?)" if near else ""))
        return UserError(
            f"unknown tag{'s' if len(unknown) > 1 else ''}: {', '.join(parts)}. "
            "Pass create_missing=true to create them, or use existing tags: "
            f"{one_of(sorted(names), 20)}."
        )

    async def protocol_by_ref(self, ref: str | int) -> Protocol:
        """A protocol by id, by name, or by type (`pre_trade`, `end_of_day`, ...)."""
        text = str(ref).strip()

        async def find() -> Protocol | None:
            return _match_protocol(await self.protocols(), text)

        match = await self._twice(("protocols",), find)
        if match is None:
            protocols = await self.protocols()
            if not protocols:
                raise UserError("there are no protocols (checklists) in this journal")
            labels = [f"{p.name} ({p.type})" if p.type else p.name for p in protocols]
            raise _miss_protocol(text, labels, [p.name for p in protocols])
        return await self.protocol(match.protocol_id)

    async def strategy_and_setup(
        self, strategy: str | int | None, setup: str | int | None
    ) -> tuple[int | None, int | None]:
        if strategy is None and setup is None:
            return None, None
        chosen: Strategy | None = None
        if strategy is not None:
            text = str(strategy).strip()

            async def find_strategy() -> Strategy | None:
                return _match_strategy(await self.strategies(), text)

            chosen = await self._twice(("strategies",), find_strategy)
            if chosen is None:
                raise _miss("strategy", text, [s.name for s in await self.strategies()])
        if setup is None:
            return (chosen.id if chosen else None), None
        wanted = str(setup).strip()
        chosen_id = chosen.id if chosen else None

        async def candidates() -> list[Strategy]:
            strategies = await self.strategies()
            if chosen_id is None:
                return strategies
            return [s for s in strategies if s.id == chosen_id]

        async def find_setup() -> tuple[int, int] | None:
            for strat in await candidates():
                detail = await self.strategy(strat.id)
                for s in detail.setups:
                    sid = s.get("setup_id", s.get("id"))
                    if (wanted.isdigit() and sid == int(wanted)) or str(
                        s.get("name", "")
                    ).casefold() == wanted.casefold():
                        return strat.id, int(str(sid))
            return None

        pair = await self._twice(("strategies",), find_setup)
        if pair is not None:
            return pair
        names = [
            str(s.get("name"))
            for strat in await candidates()
            for s in (await self.strategy(strat.id)).setups
        ]
        raise _miss("setup", wanted, names)

    async def emotion(self, value: str) -> str:
        wanted = value.strip().casefold()

        async def find() -> str | None:
            return next((e for e in await self.emotions() if e.casefold() == wanted), None)

        found = await self._twice(("emotions",), find)
        if found is None:
            raise _miss("emotion", value, await self.emotions())
        return found

    async def connection(self, ref: str | int | None) -> AutosyncConnection:
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            # Without a name, only a connection that can sync is a candidate.
            usable = await self._twice(("connections",), self._single_usable_connection)
            if usable is not None:
                return usable
            connections = await self.connections()
            if not connections:
                raise UserError(
                    "there are no auto-sync connections; connect a broker in Tradavity first"
                )
            raise UserError(
                "which connection? Pass connection as an id, broker or account name: "
                + one_of([_connection_label(c) for c in connections])
            )
        text = str(ref).strip()

        async def find() -> list[AutosyncConnection] | None:
            return _match_connections(await self.connections(), text) or None

        matches = await self._twice(("connections",), find)
        if matches is not None and len(matches) == 1:
            return matches[0]
        if matches is not None:
            raise UserError(
                f"{text!r} matches several connections; pass the connection id: "
                + one_of([_connection_label(c) for c in matches])
            )
        connections = await self.connections()
        if not connections:
            raise UserError(
                "there are no auto-sync connections; connect a broker in Tradavity first"
            )
        names = [n for c in connections for n in (c.broker_name, c.account_name, c.broker_key) if n]
        raise _miss("connection", text, names)

    async def _single_usable_connection(self) -> AutosyncConnection | None:
        usable = [
            c
            for c in await self.connections()
            if c.is_active is not False
            and (c.token_status or "").casefold() not in {"expired", "invalid", "revoked"}
            and (c.status or "").casefold() not in {"token_expired", "disabled", "inactive"}
        ]
        return usable[0] if len(usable) == 1 else None


def _match_account(accounts: Sequence[Account], text: str, *, archived: bool) -> Account | None:
    """By id, else by name (any case); active accounts first, archived ones only if asked."""
    ordered = sorted(accounts, key=lambda a: (bool(a.is_archived), a.id))
    if not archived:
        ordered = [a for a in ordered if not a.is_archived]
    if text.isdigit():
        by_id = next((a for a in ordered if a.id == int(text)), None)
        if by_id is not None:
            return by_id
    fold = text.casefold()
    return next((a for a in ordered if a.account_name.casefold() == fold), None)


def _match_protocol(protocols: Sequence[Protocol], text: str) -> Protocol | None:
    match: Protocol | None = None
    if text.isdigit():
        match = next((p for p in protocols if p.protocol_id == int(text)), None)
    if match is None:
        match = next((p for p in protocols if p.name.casefold() == text.casefold()), None)
    if match is None:
        kind = text.casefold().replace("-", "_").replace(" ", "_")
        of_type = [p for p in protocols if (p.type or "") == kind and p.is_active is not False]
        of_type.sort(key=lambda p: (not p.is_default, p.protocol_id))
        match = of_type[0] if of_type else None
    return match


def _match_strategy(strategies: Sequence[Strategy], text: str) -> Strategy | None:
    return next(
        (
            s
            for s in strategies
            if (text.isdigit() and s.id == int(text)) or s.name.casefold() == text.casefold()
        ),
        None,
    )


def _match_connections(
    connections: Sequence[AutosyncConnection], text: str
) -> list[AutosyncConnection]:
    if text.isdigit():
        by_id = [c for c in connections if c.connection_id == int(text)]
        if by_id:
            return by_id
    fold = text.casefold()
    return [
        c
        for c in connections
        if fold
        in {
            (c.broker_key or "").casefold(),
            (c.broker_name or "").casefold(),
            (c.account_name or "").casefold(),
        }
    ]


def _connection_label(c: AutosyncConnection) -> str:
    return f"{c.connection_id}: {c.broker_name or c.broker_key} -> {c.account_name or c.account_id}"


def _miss_protocol(word: str, labels: Sequence[str], names: Sequence[str]) -> UserError:
    near = close_matches(word, names)
    hint = f" Did you mean {one_of(near)}?" if near else ""
    return UserError(
        f"unknown protocol {word!r}.{hint} Pass an id, a name or a type; protocols: "
        f"{one_of(list(labels))}."
    )
