"""Argument completion for prompts and resource templates: names from the user's own
journal (accounts, tags, protocols, strategies, symbols) and the fixed lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp.server.mcpserver import MCPServer
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from ..api.errors import TradavityError
from . import read
from .workspace import CURRENT_WORKSPACE, Workspace

__all__ = ["candidates", "complete", "register_completions"]

Reference = PromptReference | ResourceTemplateReference
CompletionHandler = Callable[
    [Reference, CompletionArgument, CompletionContext | None], Awaitable[Completion | None]
]
MAX_VALUES = 100


async def complete(
    ref: Reference, argument: CompletionArgument, context: CompletionContext | None
) -> Completion | None:
    """Values that start with what was typed first, then values that contain it."""
    ws = CURRENT_WORKSPACE.get()
    values = await candidates(ws, argument.name, ref) if ws is not None else []
    prefix = argument.value.casefold()
    hits = [v for v in values if v.casefold().startswith(prefix)]
    hits += [v for v in values if prefix in v.casefold() and v not in hits]
    return Completion(values=hits[:MAX_VALUES], total=len(hits), has_more=len(hits) > MAX_VALUES)


async def candidates(ws: Workspace, argument: str, ref: Reference) -> list[str]:
    """Completion values for an argument name, whatever prompt or template asks."""
    try:
        if argument == "account":
            return [a.account_name for a in await ws.ref.accounts() if not a.is_archived]
        if argument in {"tag", "tags"}:
            return sorted(t.name for t in await ws.ref.tags())
        if argument == "protocol":
            return [p.name for p in await ws.ref.protocols()]
        if argument == "range":
            return list(read.RANGES)
        if argument == "kind":
            return list(read.STATS_KINDS)
        if argument == "name" and isinstance(ref, ResourceTemplateReference):
            return list(read.CATALOG)
        if argument == "symbol":
            data = await ws.api.catalog("instruments")
            rows = data.get("instruments", data) if isinstance(data, dict) else data
            return sorted({str(r.get("symbol")) for r in rows or [] if isinstance(r, dict)})
        if argument == "strategy":
            return [s.name for s in await ws.ref.strategies()]
    except TradavityError:
        return []
    return []


def register_completions(mcp: MCPServer) -> None:
    # The SDK's `completion()` decorator is untyped; keep our handler's signature.
    register: Callable[[CompletionHandler], CompletionHandler] = mcp.completion()  # type: ignore[no-untyped-call]
    register(complete)
