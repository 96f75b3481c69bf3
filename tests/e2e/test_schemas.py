"""Schemas a model fills on the first try (#25): every part described field by field, one
type per value, and a journal_trade built from the schema alone accepted at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from tradavity_mcp.server.tools.guide import GUIDES

from .conftest import Env

pytestmark = pytest.mark.anyio

#: A host that renders MCP Apps also lists review_trade.
APPS_CAPABLE = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


def _nodes(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema inside `schema` with where it is."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}.{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from _nodes(sub, f"{path}.{key}[{i}]")


def _problems(tool: dict[str, Any]) -> list[str]:
    found = []
    for where, node in _nodes(tool["inputSchema"], tool["name"]):
        if isinstance(node.get("type"), list):
            found.append(f"{where}: a type list {node['type']}")
        for key in ("anyOf", "oneOf"):
            types = {s.get("type") for s in node.get(key) or []}
            if len(types) > 1:
                found.append(f"{where}: {key} of several types {sorted(map(str, types))}")
        if "$ref" in node:
            found.append(f"{where}: a $ref (not written out in place)")
        if node.get("type") == "object":
            described = isinstance(node.get("properties"), dict) and node["properties"]
            typed_map = isinstance(node.get("additionalProperties"), dict) and node[
                "additionalProperties"
            ].get("type")
            if not (described or typed_map):
                found.append(f"{where}: an object without properties")
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            found.append(f"{where}: a list without items")
        if node is not tool["inputSchema"] and not (
            node.get("type") or node.get("enum") or node.get("anyOf")
        ):
            found.append(f"{where}: no type")
    return found


async def _tools(env: Env, **kwargs: Any) -> list[dict[str, Any]]:
    async with Client(env.server(), **kwargs) as client:
        tools = (await client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


async def test_no_union_and_no_object_without_properties(env: Env) -> None:
    """Both listings: a client without Apps, and one with them (review_trade too)."""
    plain = await _tools(env)
    with_apps = await _tools(env, extensions=[APPS_CAPABLE])
    names = {t["name"] for t in with_apps}
    assert "review_trade" in names
    assert {"journal_trade", "update_trade", "guide"} <= {t["name"] for t in plain}
    problems = [p for tool in [*plain, *with_apps] for p in _problems(tool)]
    assert problems == []
    # The parts the issue found bare are described field by field now.
    journal = next(t for t in plain if t["name"] == "journal_trade")["inputSchema"]["properties"]
    assert {"symbol", "direction", "net_pnl", "trade_date"} <= set(journal["trade"]["required"])
    assert {"path", "data", "filename", "label"} <= set(journal["screenshot"]["properties"])
    assert set(journal["checklist"]["required"]) == {"protocol", "answers"}
    assert set(journal["executions"]["properties"]) == {"entries", "exits"}
    update = next(t for t in plain if t["name"] == "update_trade")["inputSchema"]["properties"]
    assert "trade_quality_grade" in update["changes"]["properties"]
    assert "net_pnl" not in update["changes"]["properties"]


def test_the_checker_finds_what_it_looks_for() -> None:
    """The walk above would see each problem (so its empty list means something)."""
    bad = {
        "name": "t",
        "inputSchema": {
            "type": "object",
            "properties": {
                "a": {"type": ["string", "integer"]},
                "b": {"type": "object", "description": "free"},
                "c": {
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "d": {"$ref": "#/$defs/D"},
                "e": {"description": "anything"},
            },
        },
    }
    assert [p.split(":")[0] for p in _problems(bad)] == [
        "t.a",
        "t.b",
        "t.c.items",
        "t.d",
        "t.d",
        "t.e",
    ]


# --- a journal_trade from the schema alone ------------------------------------------------


def _example(schema: dict[str, Any]) -> Any:
    """A value for one field, read only from its schema, as a model would: an enum's
    first choice, a number inside its bounds, a quoted or `e.g.` example from the
    description."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(low + 1, 1)
        high = schema.get("maximum")
        return min(value, high) if high is not None else value
    if kind == "boolean":
        return False
    if kind == "string":
        text = schema.get("description", "")
        quoted = re.search(r"(?<!\w)'([^']+)'(?!\w)", text)  # 'now', not user's
        if quoted:
            return quoted.group(1)
        example = re.search(r"e\.g\. ([^,;)\s]+)", text)
        return example.group(1) if example else "x"
    if kind == "object":
        return _fill(schema)
    if kind == "array":
        return [_example(schema["items"])]
    raise AssertionError(f"no value for {schema}")


def _fill(schema: dict[str, Any]) -> dict[str, Any]:
    """Every required field, and every optional one whose schema names its values (an
    enum or a bounded number)."""
    out: dict[str, Any] = {}
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        named = "enum" in sub or {"minimum", "maximum"} <= set(sub)
        if name in required or named:
            out[name] = _example(sub)
    return out


async def test_a_journal_trade_built_from_the_schema_alone_is_accepted(
    env: Env, b64png: str
) -> None:
    """No knowledge of our models: the script reads journal_trade's schema, fills the
    trade (required fields, every enum, bounded numbers) and a screenshot from it, and
    the first call journals the trade (the sandbox's key has one account in use)."""
    accounts = await env.api.list_accounts()
    for extra in accounts[1:]:
        await env.api.request("DELETE", f"/accounts/{extra.id}", idempotency_key=f"a{extra.id}")
    async with Client(env.server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = tools["journal_trade"].input_schema
        trade = _fill(schema["properties"]["trade"])
        screenshot_fields = schema["properties"]["screenshot"]["properties"]
        assert {"data", "filename"} <= set(screenshot_fields)
        arguments = {"trade": trade, "screenshot": {"data": b64png, "filename": "chart.png"}}
        result = await client.call_tool("journal_trade", arguments)
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, text
    assert "- screenshot: done" in text
    number = (result.structured_content or {})["trade_number"]
    written = await env.api.get_trade(number)
    assert written.symbol == trade["symbol"].upper()
    assert written.grade == trade["trade_quality_grade"]
    assert len(written.screenshots) == 1


async def test_guide_gives_each_prompts_guidance_as_a_tool(env: Env) -> None:
    """Hosts that show only tools (claude.ai) reach the prompts through `guide`: each
    prompt, rendered from its file, with its arguments as blanks to fill."""
    async with Client(env.server()) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert set(GUIDES) == prompts
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["guide"].input_schema["properties"]["name"]["enum"] == list(GUIDES)
        result = await client.call_tool("guide", {"name": "pre_trade_check"})
        text = "".join(getattr(c, "text", "") for c in result.content)
        prompt = await client.get_prompt("pre_trade_check", {"symbol": "MNQ"})
        review = await client.call_tool("guide", {"name": "end_of_day_review"})
        day = await client.get_prompt("end_of_day_review", {})
    assert not result.is_error
    assert "Fill in from the conversation: <symbol> = Instrument about to be traded" in text
    assert "I am about to trade <symbol> (direction: either)" in text
    said = prompt.messages[0].content
    assert "record_protocol_response" in getattr(said, "text", "")
    assert "`record_protocol_response` (protocol `pre_trade`" in text
    # A template that speaks of the day gets the user's clock, as the prompt does.
    eod = "".join(getattr(c, "text", "") for c in review.content)
    said_eod = getattr(day.messages[0].content, "text", "")
    today_line = next(line for line in said_eod.splitlines() if line.startswith("My today is"))
    assert today_line in eod
    assert "<today>" not in eod
    assert re.search(r"\$\{?[A-Za-z_]", eod) is None  # no placeholder left (an amount may stay)
