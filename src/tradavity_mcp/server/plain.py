"""Tool-argument errors in plain words.

The SDK checks a call's arguments against the tool's signature before our code runs,
and reports a failure as pydantic's own text (types, `input_value=`, a documentation
URL). `PlainServer` is the `MCPServer` that rewrites that one failure, in one place,
with `plain_validation_message`: the field, what it accepts, the value given.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from ..api.models import plain_validation_message

__all__ = ["PlainServer", "plain_arguments_error"]


def plain_arguments_error(tool: str, exc: ValidationError) -> ToolError:
    """The error a model reads when `tool`'s arguments do not fit its signature."""
    return ToolError(f"invalid arguments for {tool}: {plain_validation_message(exc)}")


class PlainServer(MCPServer[Any]):
    """`MCPServer`, with argument validation failures in plain words."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # Only the SDK's own argument check leaves a bare ValidationError as the
            # cause; a tool's errors arrive wrapped in its ToolError.
            if isinstance(exc.__cause__, ValidationError):
                raise plain_arguments_error(name, exc.__cause__) from exc.__cause__
            raise
