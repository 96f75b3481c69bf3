"""Compact tool schemas keep every meaning the model needs."""

from __future__ import annotations

from tradavity_mcp.server.schema import compact_schema


def test_compact_schema_keeps_meaning() -> None:
    schema = {
        "title": "Args",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "N"},
            "ref": {"anyOf": [{"type": "string"}, {"type": "integer"}], "title": "Ref"},
            "opts": {
                "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
                "default": None,
                "description": "free",
            },
            "mode": {"default": "add", "enum": ["add", "remove"], "type": "string"},
        },
        "required": ["title", "ref"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "n": {"type": "integer"},
            # A name or an id: one string field (single-type dialects refuse type lists).
            "ref": {"type": "string"},
            "opts": {"type": "object", "description": "free"},
            "mode": {"default": "add", "enum": ["add", "remove"]},
        },
        "required": ["title", "ref"],
    }


def test_nested_parts_are_written_out_in_place() -> None:
    """`$defs` are inlined (a model and a single-type dialect both read them in place),
    the part's own description wins over its class's, and `additionalProperties: false`
    goes (the model refuses unknown keys all the same)."""
    schema = {
        "$defs": {
            "Part": {
                "type": "object",
                "description": "the class's",
                "additionalProperties": False,
                "properties": {"x": {"type": "number", "exclusiveMinimum": 0}},
                "required": ["x"],
            }
        },
        "type": "object",
        "properties": {
            "part": {"$ref": "#/$defs/Part", "description": "the field's"},
            "parts": {"type": "array", "items": {"$ref": "#/$defs/Part"}},
            "flag": {"type": "boolean", "default": False},
        },
    }
    part = {
        "type": "object",
        "properties": {"x": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["x"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {
            "part": {**part, "description": "the field's"},
            "parts": {"type": "array", "items": {**part, "description": "the class's"}},
            "flag": {"type": "boolean"},
        },
    }


def test_required_properties_come_first() -> None:
    schema = {
        "type": "object",
        "properties": {"b": {"type": "string"}, "a": {"type": "string"}},
        "required": ["a"],
    }
    assert list(compact_schema(schema)["properties"]) == ["a", "b"]
