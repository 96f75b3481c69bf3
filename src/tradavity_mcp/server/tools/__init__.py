"""Every tool, in one table: its function, title, the scope a key needs to see it and
its annotations. `register_tools` adds them to the server in the table's order.

Read tools are plain functions (`read`, `sync`). Journaling tools are built from the
write table (`writes.table.WRITES`) by one adapter (`write`), so their arguments,
exactly-once handling and results follow one shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations

from ..apps import ui_meta
from ..deferred import add_tool
from ..writes.table import WRITES
from . import guide, insights, read, sync, write
from .write import ToolEnv

__all__ = ["TOOLS", "TOOL_SCOPES", "Tool", "ToolEnv", "register_tools"]

READS = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
#: Reads only the server's own files.
GUIDE = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
)


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    #: The scope a key needs for the tool to be listed; None: every key has it.
    scope: str | None
    annotations: ToolAnnotations
    #: The tool itself; None for a journaling tool (built from `WRITES[name]`).
    fn: Callable[..., Awaitable[CallToolResult]] | None = None
    #: For journaling tools (read tools use their docstring).
    description: str | None = None

    @property
    def writes(self) -> bool:
        return self.fn is None


def _journaling(
    name: str, title: str, description: str, annotations: ToolAnnotations = WRITE
) -> Tool:
    return Tool(name, title, WRITES[name].scope, annotations, None, description)


TOOLS: tuple[Tool, ...] = (
    Tool("find_trades", "Find trades", "read:trades", READS, read.find_trades),
    Tool("get_trade", "Get trade", "read:trades", READS, read.get_trade),
    Tool("get_stats", "Get stats", "read:trades", READS, read.get_stats),
    Tool("get_calendar", "Get P&L calendar", "read:trades", READS, read.get_calendar),
    # The catalog scope is granted to every key.
    Tool("lookup", "Look up", None, READS, read.lookup),
    Tool("sync_status", "Sync status", "read:autosync", READS, sync.sync_status),
    Tool(
        "get_account_health",
        "Account health",
        "read:balance",
        READS,
        insights.get_account_health,
    ),
    Tool("get_goals", "Goals", "read:goals", READS, insights.get_goals),
    _journaling(
        "create_trade",
        "Create trade",
        "Journal one trade; returns its number. journal_trade also adds tags, fills, a "
        "screenshot or a checklist in the same call.",
    ),
    _journaling(
        "journal_trade",
        "Journal trade (all-in-one)",
        "Journal a trade with its tags, fills, chart and checklist in one call, each part "
        "once; the same trade again with corrected parts finishes a partial. Never invent "
        "checklist answers: ask what the result names.",
    ),
    _journaling("tag_trade", "Tag trade", "Add, remove or replace tags on a trade."),
    _journaling(
        "attach_screenshot",
        "Attach screenshot",
        "Attach a chart (PNG, JPEG or PDF, max 10 MB) to a trade; over HTTP without a file, "
        "answers a one-time upload link for the user.",
    ),
    _journaling(
        "record_protocol_response",
        "Record checklist answers",
        "Record checklist (protocol) answers, optionally for a trade (completing its "
        "response, never doubling it).",
    ),
    _journaling(
        "trigger_sync",
        "Sync broker",
        "Import new trades from the broker now (one manual sync per connection every 20 s).",
    ),
    _journaling(
        "update_trade",
        "Update trade",
        "Change a trade's notes, ratings, strategy or stops; symbol, date, direction and "
        "P&L are fixed (archive and journal anew).",
    ),
    _journaling(
        "archive_trade",
        "Archive trade",
        "Archive (soft-delete) a trade; it can be restored in Tradavity for 30 days.",
        DESTRUCTIVE,
    ),
    # The prompts' guidance, for hosts that show the model only tools.
    Tool("guide", "Guide", None, GUIDE, guide.guide),
)

#: Every tool a key may lack the scope for, and that scope.
TOOL_SCOPES: dict[str, str] = {t.name: t.scope for t in TOOLS if t.scope is not None}


def register_tools(mcp: MCPServer, env: ToolEnv, *, read_only: bool) -> None:
    """Add every tool of the table (no journaling tool when `read_only`)."""
    for tool in TOOLS:
        if tool.fn is not None:
            add_tool(
                mcp,
                tool.fn,
                name=tool.name,
                title=tool.title,
                annotations=tool.annotations,
                meta=ui_meta(tool.name),  # the MCP Apps view, if the tool has one
            )
            continue
        if read_only:
            continue
        fn: Any = write.adapter(WRITES[tool.name], env, tool.description or "")
        add_tool(
            mcp,
            fn,
            name=tool.name,
            title=tool.title,
            description=tool.description,
            annotations=tool.annotations,
            # Results are structured either way; the schema is built only if advertised.
            structured_output=None if env.output_schemas else False,
        )
