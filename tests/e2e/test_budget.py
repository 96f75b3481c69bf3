"""The tools/list context budget, and a snapshot so any schema change shows in review."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp import Client

from .conftest import Env

pytestmark = pytest.mark.anyio

#: What every conversation pays for the tools (about 4 characters a token): 16,000
#: characters, ~4,000 tokens, leaves room for schemas described field by field (#25).
BUDGET_CHARS = 16_000
SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


async def _tools(env: Env, **kwargs: object) -> list[dict[str, object]]:
    async with Client(env.server(), **kwargs) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


async def test_tools_list_fits_the_budget(env: Env) -> None:
    tools = await _tools(env)
    size = len(json.dumps(tools, separators=(",", ":"), ensure_ascii=False))
    assert size <= BUDGET_CHARS, f"tools/list is {size} characters (budget {BUDGET_CHARS})"
    assert len(tools) >= 14
    for tool in tools:
        assert tool.get("description"), tool["name"]
        assert tool.get("title"), tool["name"]
        # Hints equal to the spec's defaults are left out: read as a client reads them.
        given = tool["annotations"]
        assert isinstance(given, dict)
        hints = {
            "readOnlyHint": False, "destructiveHint": True, "idempotentHint": False,
            "openWorldHint": True, **given,
        }  # fmt: skip
        writes = not hints["readOnlyHint"]
        # Every tool talks to Tradavity but the guide, which reads the server's own texts.
        assert hints["openWorldHint"] == (tool["name"] != "guide"), tool["name"]
        if writes:
            assert hints["idempotentHint"], tool["name"]  # exactly once, by design
            assert hints["destructiveHint"] == (tool["name"] == "archive_trade"), tool["name"]


async def test_tools_list_snapshot(env: Env) -> None:
    tools = await _tools(env)
    text = json.dumps(tools, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text, "utf-8")
    assert SNAPSHOT.exists(), "no snapshot: run UPDATE_SNAPSHOTS=1 pytest tests/e2e/test_budget.py"
    assert text == SNAPSHOT.read_text("utf-8"), (
        "tools/list changed: review the diff, then UPDATE_SNAPSHOTS=1 to accept it"
    )
