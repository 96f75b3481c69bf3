"""The tradavity-mcp MCP server.

`build_server(settings)` (`app`) returns a ready server. Its lifespan owns the API
client and the write ledger (shared by every connection of the process), learns each
key's scopes from `/me` (tools a key cannot use are not listed), and runs the resumer
that finishes pending writes (`background`). `build_http_app(...)` (`http`) wraps it
for the HTTP transports. ARCHITECTURE.md maps the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .app import AppState, HostedOptions, StreamOptions, TradavityServer, build_server

if TYPE_CHECKING:
    from .http import build_http_app
    from .tools import TOOL_SCOPES
    from .writes.table import resume_pending

#: Loaded when first asked for: a stdio server needs none of them to answer `initialize`.
_LAZY = {
    "build_http_app": ".http",
    "TOOL_SCOPES": ".tools",
    "resume_pending": ".writes.table",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TOOL_SCOPES",
    "AppState",
    "HostedOptions",
    "StreamOptions",
    "TradavityServer",
    "build_http_app",
    "build_server",
    "resume_pending",
]
