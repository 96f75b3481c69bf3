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
            "ref": {"type": ["string", "integer"]},
            "opts": {"type": "object", "description": "free"},
            "mode": {"default": "add", "enum": ["add", "remove"]},
        },
        "required": ["title", "ref"],
    }
