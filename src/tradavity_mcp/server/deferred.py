"""Tools, resources and prompts registered on first use, not at start.

Building the tools' argument models and schemas (and importing the modules behind them)
is most of our start-up time, and answering `initialize` needs none of it. So
`build_server` hands the registration to `defer_registration`: the SDK's tool, resource
and prompt managers are stood in for by `_OnFirstUse`, which runs the registration the
first time any of them is touched (a `tools/list`, a `tools/call`, a resource read, a
prompt or anything else) and from then on is the manager.

Capabilities do not depend on it: the SDK derives them from its request handlers, which
`MCPServer` installs in its constructor. Completions, the subscribe methods and the
prompts' request check stay eager (they add handlers and middleware).

`add_tool` builds each tool once per process (its argument model and input schema) and
shares it with every later server the process builds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool

__all__ = ["add_tool", "defer_registration", "registered"]


class _Once:
    """Runs `fill` once, whichever manager asks first (and only once across threads)."""

    def __init__(self, fill: Callable[[], None]) -> None:
        self._fill: Callable[[], None] | None = fill
        self._lock = threading.RLock()
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        # Another thread waits here until the registration is complete; `fill`'s own
        # calls back into the managers (same thread) find `_fill` spent and pass through.
        with self._lock:
            fill, self._fill = self._fill, None
            if fill is not None:
                try:
                    fill()
                finally:
                    self.done = True


class _OnFirstUse:
    """Stands in for one of the SDK's managers; the first attribute asked runs `once`."""

    def __init__(self, manager: object, once: _Once) -> None:
        self._manager = manager
        self._once = once

    def __getattr__(self, name: str) -> Any:
        # Only reached for the manager's own attributes (ours are set in __init__). While
        # `fill` runs, its own add_tool/add_resource calls land here with `once` already
        # spent, and go straight to the manager.
        self._once()
        return getattr(self._manager, name)


def defer_registration(mcp: MCPServer[Any], fill: Callable[[], None]) -> None:
    """Run `fill` (which adds the tools, resources and prompts) the first time any of
    them is needed."""
    once = _Once(fill)
    mcp._tool_manager = _OnFirstUse(mcp._tool_manager, once)  # type: ignore[assignment]
    mcp._resource_manager = _OnFirstUse(mcp._resource_manager, once)  # type: ignore[assignment]
    mcp._prompt_manager = _OnFirstUse(mcp._prompt_manager, once)  # type: ignore[assignment]
    mcp._deferred_once = once  # type: ignore[attr-defined]


def registered(mcp: MCPServer[Any]) -> bool:
    """Whether the deferred tools, resources and prompts have been added (for tests)."""
    once = getattr(mcp, "_deferred_once", None)
    return once is None or bool(once.done)


#: Each tool as the SDK built it, by name and structured output: a build depends only on
#: the function's signature and the arguments below, which are the same for every server.
_BUILT: dict[tuple[str, bool | None], Tool] = {}


def add_tool(
    mcp: MCPServer[Any],
    fn: Callable[..., Any],
    *,
    name: str,
    structured_output: bool | None = None,
    **kwargs: Any,
) -> None:
    """`mcp.add_tool`, building the tool only the first time the process adds `name`.

    Later servers get a copy with their own `fn` (a journaling tool's function closes
    over its server's settings).
    """
    key = (name, structured_output)
    built = _BUILT.get(key)
    if built is None:
        built = _BUILT[key] = Tool.from_function(
            fn, name=name, structured_output=structured_output, **kwargs
        )
    mine = built if built.fn is fn else built.model_copy(update={"fn": fn})
    # The SDK adds tools only from a function, building them again; its manager's table
    # is where `add_tool` puts what it built.
    mcp._tool_manager._tools[name] = mine
