"""Tool-argument errors in plain words, and the argument names reads use.

The SDK checks a call's arguments against the tool's signature before our code runs,
and reports a failure as pydantic's own text (types, `input_value=`, a documentation
URL). `PlainServer` is the `MCPServer` that rewrites that one failure, in one place,
with `plain_validation_message`: the field, what it accepts, the value given; a key the
tool does not take is named with the names it does take (the closest first).

It also refuses what the SDK would silently drop: an argument the tool does not have
(`create_trade(grade=...)` used to journal the trade without its grade). A name the
reads return (`READ_NAMES`: `grade`) is taken as the name the write uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from ..api.models import plain_validation_message
from .refdata import close_matches
from .schema import inline_refs

__all__ = ["READ_NAMES", "PlainServer", "plain_arguments_error", "read_names"]

#: Names the reads return (`get_trade`, `find_trades`) -> the name a write takes. A
#: model that read `grade` sends `grade` back; it means `trade_quality_grade`.
READ_NAMES = {"grade": "trade_quality_grade"}


#: Words people use for a field, where spelling alone finds no close name.
_SAID_FOR = {
    "stop_loss": "sl_price", "stop": "sl_price", "sl": "sl_price",
    "take_profit": "tp_price", "target": "tp_price", "tp": "tp_price",
    "pnl": "net_pnl", "profit": "net_pnl", "date": "trade_date", "entry_time": "trade_date",
    "side": "direction", "qty": "quantity", "size": "quantity", "contracts": "quantity",
    "emotion": "emotional_state", "notes": "general_notes", "ticker": "symbol",
}  # fmt: skip


def _near(key: str, names: Sequence[str]) -> list[str]:
    said = _SAID_FOR.get(key.casefold())
    return [said] if said is not None and said in names else close_matches(key, names)


def read_names(data: Mapping[str, Any], where: str, takes: Sequence[str]) -> dict[str, Any]:
    """`data` with each read name (`READ_NAMES`) under the write name `takes` has."""
    out = dict(data)
    for read, write in READ_NAMES.items():
        if read not in out or read in takes or write not in takes:
            continue
        value = out.pop(read)
        if write in out and out[write] != value:
            raise ValueError(
                f"{where}{read} and {where}{write} are the same field (reads say {read}); "
                "send one of them"
            )
        out[write] = value
    return out


def _part(schema: Any, loc: Sequence[int | str]) -> Any:
    """The schema of the object at `loc` (an argument's path), or None."""
    for step in loc:
        if not isinstance(schema, dict):
            return None
        if "anyOf" in schema:  # a part that may be null: its object branch
            schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), None)
            if schema is None:
                return None
        if isinstance(step, int):
            schema = schema.get("items")
        else:
            schema = (schema.get("properties") or {}).get(step)
    return schema


def _known(schema: Any) -> list[str]:
    props = schema.get("properties") if isinstance(schema, dict) else None
    return list(props) if isinstance(props, dict) else []


def _unknown_key_hints(exc: ValidationError, schema: Any) -> list[str]:
    """For each key a part does not take: the closest names it does take."""
    hints: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        if err.get("type") != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
            continue
        names = _known(_part(schema, loc[:-1]))
        if not names:
            continue
        near = _near(loc[-1], names)
        owner = ".".join(str(p) for p in loc[:-1] if isinstance(p, str)) or "this tool"
        said = f"did you mean {' or '.join(near)}? " if near else ""
        hints.append(f"{loc[-1]}: {said}{owner} takes {', '.join(sorted(names))}")
    return hints


def plain_arguments_error(
    tool: str, exc: ValidationError, schema: Mapping[str, Any] | None = None
) -> ToolError:
    """The error a model reads when `tool`'s arguments do not fit its signature."""
    text = f"invalid arguments for {tool}: {plain_validation_message(exc)}"
    hints = _unknown_key_hints(exc, inline_refs(dict(schema))) if schema else []
    return ToolError(text + "".join(f" ({h})" for h in hints))


def _unknown_arguments(tool: str, schema: Mapping[str, Any], arguments: dict[str, Any]) -> None:
    names = _known(schema)
    unknown = [k for k in arguments if k not in names]
    if not unknown or not names:
        return
    parts = []
    for key in unknown:
        near = _near(key, names)
        parts.append(f"{key}" + (f" (did you mean {' or '.join(near)}?)" if near else ""))
    raise ToolError(
        f"invalid arguments for {tool}: {', '.join(parts)} "
        f"{'is not an argument' if len(unknown) == 1 else 'are not arguments'} of {tool}; "
        f"it takes {', '.join(sorted(names))}. Nothing was done."
    )


class PlainServer(MCPServer[Any]):
    """`MCPServer`, with argument validation failures in plain words."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        schema = tool.parameters if tool is not None else None
        if schema is not None:
            try:
                arguments = read_names(arguments, "", _known(schema))
            except ValueError as exc:
                raise ToolError(f"invalid arguments for {name}: {exc}") from None
            _unknown_arguments(name, schema, arguments)
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # Only the SDK's own argument check leaves a bare ValidationError as the
            # cause; a tool's errors arrive wrapped in its ToolError.
            if isinstance(exc.__cause__, ValidationError):
                raise plain_arguments_error(name, exc.__cause__, schema) from exc.__cause__
            raise
