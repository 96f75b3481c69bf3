"""Compact JSON Schemas for tools/list.

Every tool schema is paid for, in tokens, in every conversation. Pydantic's schemas
carry noise a model does not need: a `title` on every property, `anyOf: [T, null]`
with `default: null` for each optional argument, `additionalProperties: true` on free
objects. We strip that on the way out. Validation is unaffected: arguments are still
checked by the tool's full pydantic model, which also accepts an explicit null.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_output_schema", "compact_schema", "compact_tool"]

_NULL = {"type": "null"}


def compact_schema(schema: Any) -> Any:
    """A smaller schema that accepts the same non-null values."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            # Property *names* may be anything (even "title"): recurse into values only.
            out[key] = {name: compact_schema(prop) for name, prop in value.items()}
            continue
        out[key] = compact_schema(value)
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and _NULL in any_of and out.get("default", ...) is None:
        rest = [s for s in any_of if s != _NULL]
        del out["anyOf"]
        out.pop("default", None)
        if len(rest) == 1 and isinstance(rest[0], dict):
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
    if out.get("additionalProperties") is True and out.get("type") == "object":
        del out["additionalProperties"]
    # An enum of strings says its type already.
    enum = out.get("enum")
    if (
        out.get("type") == "string"
        and isinstance(enum, list)
        and all(isinstance(v, str) for v in enum)
    ):
        del out["type"]
    # Collapse `anyOf: [{"type": "string"}, {"type": "integer"}]` into a type list.
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(isinstance(s, dict) and set(s) == {"type"} for s in any_of):
        del out["anyOf"]
        out["type"] = [s["type"] for s in any_of]
    return out


def _strip_defaults(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_defaults(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: (
            {n: _strip_defaults(p) for n, p in v.items()}
            if k == "properties"
            else _strip_defaults(v)
        )
        for k, v in schema.items()
        if k != "default"
    }


def compact_output_schema(schema: Any) -> Any:
    """Output schemas also lose their defaults: they describe results, not arguments."""
    return _strip_defaults(compact_schema(schema))


def compact_tool(tool: dict[str, Any], *, output_schema: bool = True) -> dict[str, Any]:
    """A tools/list entry with compact schemas and single-spaced descriptions."""
    out = dict(tool)
    if not output_schema:
        out.pop("outputSchema", None)
    if isinstance(out.get("description"), str):
        out["description"] = " ".join(out["description"].split())
    if "inputSchema" in out:
        out["inputSchema"] = compact_schema(out["inputSchema"])
    if "outputSchema" in out:
        out["outputSchema"] = compact_output_schema(out["outputSchema"])
    return out
