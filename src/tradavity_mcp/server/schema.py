"""Compact JSON Schemas for tools/list.

Every tool schema is paid for, in tokens, in every conversation. Pydantic's schemas
carry noise a model does not need: a `title` on every property, `anyOf: [T, null]`
with `default: null` for each optional argument, `additionalProperties: true` on free
objects. We strip that on the way out. Validation is unaffected: arguments are still
checked by the tool's full pydantic model, which also accepts an explicit null.

Every nested part is written out in place (`$defs` inlined), field by field, so a model
fills it on the first try, and a schema holds one type per value: a name-or-id
(`str | int`) is published as a string (a digit string is an id), since single-type
dialects (the OpenAPI subset behind Gemini's function declarations) reject type lists.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_output_schema", "compact_schema", "compact_tool"]

_NULL = {"type": "null"}


_REF = "#/$defs/"


def inline_refs(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """`schema` with each local `$ref` replaced by its definition and `$defs` dropped."""
    if isinstance(schema, list):
        return [inline_refs(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if defs is None:
        defs = schema.get("$defs") or {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF) and ref[len(_REF) :] in defs:
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return inline_refs({**defs[ref[len(_REF) :]], **siblings}, defs)
    return {k: inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}


def _required_first(schema: dict[str, Any]) -> None:
    """Required properties first: the order a model reads (and fills) them."""
    props, required = schema.get("properties"), schema.get("required")
    if isinstance(props, dict) and isinstance(required, list):
        first = {k: props[k] for k in required if k in props}
        schema["properties"] = first | {k: v for k, v in props.items() if k not in first}


def compact_schema(schema: Any) -> Any:
    """A smaller schema that accepts the same non-null values."""
    if isinstance(schema, dict) and "$defs" in schema:
        schema = inline_refs(schema)
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
    # A free object's `true`, and a part's `false` (unknown keys are refused by the
    # model all the same, naming the key; the top level does not say it either).
    if out.get("additionalProperties") in (True, False) and out.get("type") == "object":
        del out["additionalProperties"]
    # A switch is off unless given (its description says what `true` does).
    if out.get("type") == "boolean" and out.get("default") is False:
        del out["default"]
    # Nor does an empty list need saying.
    if out.get("type") == "array" and out.get("default") == []:
        del out["default"]
    # An enum of strings says its type already.
    enum = out.get("enum")
    if (
        out.get("type") == "string"
        and isinstance(enum, list)
        and all(isinstance(v, str) for v in enum)
    ):
        del out["type"]
    # A name or an id (`str | int`) is one string field: a digit string is an id.
    any_of = out.get("anyOf")
    if any_of in (
        [{"type": "string"}, {"type": "integer"}],
        [{"type": "integer"}, {"type": "string"}],
    ):
        del out["anyOf"]
        out["type"] = "string"
    _required_first(out)
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
    if isinstance(out.get("annotations"), dict):
        out["annotations"] = compact_annotations(out["annotations"])
    return out


#: The hints' values a client assumes when a tool does not give them (the MCP spec's
#: `ToolAnnotations`).
_HINT_DEFAULTS = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}


def compact_annotations(annotations: dict[str, Any]) -> dict[str, Any]:
    """The hints that say something: none a client assumes anyway, and for a read-only
    tool none of those the spec gives meaning only for tools that write. Every conversation
    pays for each character of tools/list; the meaning is the same."""
    read_only = annotations.get("readOnlyHint") is True
    return {
        name: value
        for name, value in annotations.items()
        if _HINT_DEFAULTS.get(name, object()) != value
        and not (read_only and name in {"destructiveHint", "idempotentHint"})
    }
