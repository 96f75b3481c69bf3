"""The tradavity-mcp MCP server.

`build_server(settings)` (`app`) returns a ready server. Its lifespan owns the API
client and the write ledger (shared by every connection of the process), learns each
key's scopes from `/me` (tools a key cannot use are not listed), and runs the resumer
that finishes pending writes (`background`). `build_http_app(...)` (`http`) wraps it
for the HTTP transports. ARCHITECTURE.md maps the rest.
"""

from __future__ import annotations

from .app import AppState, HostedOptions, StreamOptions, TradavityServer, build_server
from .http import build_http_app
from .tools import TOOL_SCOPES
from .writes.table import resume_pending

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
