"""Reference data (accounts, tags, protocols, ...) cached briefly, and names resolved to ids.

Users speak in names ("tag it FOMO", "the pre-trade checklist", "my Apex account"); the
API wants ids. Lookups are case-insensitive; a miss is a `UserError` that lists the
closest names, so the model can correct itself in one more call. The cache lives a
short while and our own writes invalidate what they change, so a tag we just created
is visible at once.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio

from ..client import TradavityClient
from ..models import Account, AutosyncConnection, Me, Protocol, Strategy, Tag, TagCategory
from ._calls import UserError

__all__ = ["RefData", "close_matches", "one_of"]

T = TypeVar("T")
DEFAULT_TTL_SECONDS = 60.0


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to `word`, compared case-insensitively."""
    by_fold: dict[str, str] = {}
    for c in candidates:
        by_fold.setdefault(c.casefold(), c)
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


class RefData:
    """Per-principal cache of the lists tools resolve names against."""

    def __init__(
        self,
        api: TradavityClient,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = anyio.Lock()

    async def _get(self, name: str, fetch: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            hit = self._cache.get(name)
            if hit is not None and self._clock() - hit[0] < self._ttl:
                value: T = hit[1]
                return value
        value = await fetch()
        async with self._lock:
            self._cache[name] = (self._clock(), value)
        return value

    def invalidate(self, *names: str) -> None:
        """Forget cached lists (all of them when no name is given)."""
        if not names:
            self._cache.clear()
        for name in names:
            for key in [k for k in self._cache if k == name or k.startswith(name + ":")]:
                del self._cache[key]

    # --- cached lists --------------------------------------------------------------------

    async def me(self) -> Me:
        return await self._get("me", self.api.me)

    async def accounts(self) -> list[Account]:
        return await self._get("accounts", self.api.list_accounts)

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

    async def account(self, ref: str | int | None) -> Account:
        accounts = [a for a in await self.accounts() if not a.is_archived]
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            if len(accounts) == 1:
                return accounts[0]
            names = one_of([a.account_name for a in accounts])
            raise UserError(f"which account? Pass account as a name or id: {names}")
        if isinstance(ref, int) or ref.strip().isdigit():
            wanted = int(ref)
            for a in accounts:
                if a.id == wanted:
                    return a
        else:
            for a in accounts:
                if a.account_name.casefold() == ref.strip().casefold():
                    return a
        raise _miss("account", str(ref), [a.account_name for a in accounts])

    async def resolve_tags(self, refs: Sequence[str | int]) -> tuple[list[Tag], list[str]]:
        """Tags by id or name (case-insensitive): (found, unknown names)."""
        tags = await self.tags()
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

    def unknown_tags_error(self, unknown: Sequence[str], tags: Sequence[Tag]) -> UserError:
        names = [t.name for t in tags]
        parts = []
        for word in unknown:
            near = close_matches(word, names)
            parts.append(f"{word!r}" + (f" (did you mean {one_of(near)}?)" if near else ""))
        return UserError(
            f"unknown tag{'s' if len(unknown) > 1 else ''}: {', '.join(parts)}. "
            "Pass create_missing=true to create them, or use existing tags: "
            f"{one_of(sorted(names), 20)}."
        )

    async def protocol_by_ref(self, ref: str | int) -> Protocol:
        """A protocol by id, by name, or by type (`pre_trade`, `end_of_day`, ...)."""
        protocols = await self.protocols()
        text = str(ref).strip()
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
        if match is None:
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
        strategies = await self.strategies()
        chosen: Strategy | None = None
        if strategy is not None:
            text = str(strategy).strip()
            chosen = next(
                (
                    s
                    for s in strategies
                    if (text.isdigit() and s.id == int(text))
                    or s.name.casefold() == text.casefold()
                ),
                None,
            )
            if chosen is None:
                raise _miss("strategy", text, [s.name for s in strategies])
        if setup is None:
            return (chosen.id if chosen else None), None
        text = str(setup).strip()
        candidates = [chosen] if chosen else strategies
        for strat in candidates:
            detail = await self.strategy(strat.id)
            for s in detail.setups:
                sid = s.get("setup_id", s.get("id"))
                if (text.isdigit() and sid == int(text)) or str(s.get("name", "")).casefold() == (
                    text.casefold()
                ):
                    return strat.id, int(str(sid))
        names = [
            str(s.get("name"))
            for strat in candidates
            for s in (await self.strategy(strat.id)).setups
        ]
        raise _miss("setup", text, names)

    async def emotion(self, value: str) -> str:
        emotions = await self.emotions()
        for e in emotions:
            if e.casefold() == value.strip().casefold():
                return e
        raise _miss("emotion", value, emotions)

    async def connection(self, ref: str | int | None) -> AutosyncConnection:
        connections = await self.connections()
        if not connections:
            raise UserError(
                "there are no auto-sync connections; connect a broker in Tradavity first"
            )
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            # Without a name, only a connection that can sync is a candidate.
            usable = [
                c
                for c in connections
                if c.is_active is not False
                and (c.token_status or "").casefold() not in {"expired", "invalid", "revoked"}
                and (c.status or "").casefold() not in {"token_expired", "disabled", "inactive"}
            ]
            if len(usable) == 1:
                return usable[0]
            raise UserError(
                "which connection? Pass connection as an id, broker or account name: "
                + one_of([_connection_label(c) for c in connections])
            )
        text = str(ref).strip()
        fold = text.casefold()
        for c in connections:
            if text.isdigit() and c.connection_id == int(text):
                return c
        matches = [
            c
            for c in connections
            if fold
            in {
                (c.broker_key or "").casefold(),
                (c.broker_name or "").casefold(),
                (c.account_name or "").casefold(),
            }
        ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UserError(
                f"{text!r} matches several connections; pass the connection id: "
                + one_of([_connection_label(c) for c in matches])
            )
        names = [n for c in connections for n in (c.broker_name, c.account_name, c.broker_key) if n]
        raise _miss("connection", text, names)


def _connection_label(c: AutosyncConnection) -> str:
    return f"{c.connection_id}: {c.broker_name or c.broker_key} -> {c.account_name or c.account_id}"


def _miss_protocol(word: str, labels: Sequence[str], names: Sequence[str]) -> UserError:
    near = close_matches(word, names)
    hint = f" Did you mean {one_of(near)}?" if near else ""
    return UserError(
        f"unknown protocol {word!r}.{hint} Pass an id, a name or a type; protocols: "
        f"{one_of(list(labels))}."
    )
