"""The Apps surface without a browser: the build, the size budget, the ext-apps schemas,
and what a client with and without Apps is shown."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from tradavity_mcp.server.apps import APPS, REVIEW_TOOL

from ..kit import text_of
from .conftest import World, run_node

pytestmark = pytest.mark.anyio

MAX_BYTES = 150 * 1024


def test_the_committed_views_are_a_fresh_build_of_apps() -> None:
    checked = run_node("build.mjs", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("up to date") == len(APPS)


def test_each_view_ships_in_the_package_under_150_kb() -> None:
    views = files("tradavity_mcp.server.apps").joinpath("views")
    for view in APPS.values():
        html = views.joinpath(f"{view.file}.html").read_bytes()
        assert 1_000 < len(html) < MAX_BYTES, (view.file, len(html))


async def _surface(client: Client) -> dict[str, Any]:
    tools = [
        t.model_dump(mode="json", by_alias=True, exclude_none=True)
        for t in (await client.list_tools()).tools
    ]
    resources = []
    for listed in (await client.list_resources()).resources:
        if not str(listed.uri).startswith("ui://"):
            continue
        content = (await client.read_resource(str(listed.uri))).contents[0]
        resources.append(content.model_dump(mode="json", by_alias=True, exclude_none=True))
    return {"tools": tools, "resources": resources}


async def test_the_ext_apps_schemas_accept_our_tools_and_views(world: World) -> None:
    async with world.client() as client:
        surface = await _surface(client)
    linked = {t["name"]: t["_meta"]["ui"]["resourceUri"] for t in surface["tools"] if "_meta" in t}
    assert linked == {
        "get_calendar": APPS["calendar"].uri,
        "get_stats": APPS["dashboard"].uri,
        REVIEW_TOOL: APPS["journal"].uri,
    }
    for resource in surface["resources"]:
        csp = resource["_meta"]["ui"]["csp"]
        assert csp == {"connectDomains": [], "resourceDomains": [], "frameDomains": []}
    checked = run_node("validate.mjs", stdin=json.dumps(surface))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 resources: 0 problems" in checked.stdout

    # The validator does fail: a view that loads a script from elsewhere, a wrong type.
    broken = json.loads(json.dumps(surface))
    broken["resources"][0]["text"] += '<script src="https://cdn.example/x.js"></script>'
    broken["resources"][1]["mimeType"] = "text/html"
    checked = run_node("validate.mjs", stdin=json.dumps(broken))
    assert checked.returncode == 1
    assert "loads something from outside" in checked.stdout
    assert "MIME type text/html" in checked.stdout


async def test_a_client_without_apps_sees_tools_as_before(world: World) -> None:
    async with world.client(extensions=[]) as client:
        tools = (await client.list_tools()).tools
        assert REVIEW_TOOL not in {t.name for t in tools}
        assert all(not (t.meta or {}).keys() & {"ui", "ui/resourceUri"} for t in tools)
        refused = await client.call_tool(REVIEW_TOOL, {"trade": {"symbol": "ES"}})
        assert refused.is_error
        # The views themselves stay readable (a host may fetch one without negotiating).
        assert {str(r.uri) for r in (await client.list_resources()).resources} >= {
            v.uri for v in APPS.values()
        }


async def test_review_trade_checks_the_draft_and_writes_nothing(world: World) -> None:
    before = (await world.api.list_trades(limit=1)).items[0].trade_number
    async with world.client() as client:
        bad = await client.call_tool(REVIEW_TOOL, {"trade": {"symbol": "ES", "direction": "up"}})
        assert bad.is_error
        good = await client.call_tool(
            REVIEW_TOOL,
            {"trade": {"symbol": "ES", "direction": "short", "net_pnl": -20, "trade_date": "now"}},
        )
        # `now` is read back as the trader's time, with its zone, not as the word.
        now = datetime.fromtimestamp(world.clock.now(), ZoneInfo("America/New_York"))
        assert f"on {now:%Y-%m-%d %H:%M} {now:%Z}." in text_of(good)
        data = good.structured_content or {}
        assert data["status"] == "awaiting_user"
        assert data["draft"]["trade"]["symbol"] == "ES"
        assert str(data["call_id"]).startswith("form-")
        again = await client.call_tool(REVIEW_TOOL, data["draft"])
        assert (again.structured_content or {})["call_id"] != data["call_id"]
        # A trade dated tomorrow is refused here too, as journal_trade would refuse it.
        tomorrow = f"{now + timedelta(days=1):%Y-%m-%dT%H:%M}"
        future = await client.call_tool(
            REVIEW_TOOL, {"trade": {**data["draft"]["trade"], "trade_date": tomorrow}}
        )
        assert future.is_error
        assert f"trade_date '{tomorrow}' is in the future" in text_of(future)
    assert (await world.api.list_trades(limit=1)).items[0].trade_number == before


async def test_read_only_lists_no_form(world: World) -> None:
    world.settings = replace(world.settings, read_only=True)
    async with world.client() as client:
        names = {t.name for t in (await client.list_tools()).tools}
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
    assert REVIEW_TOOL not in names
    assert {"get_calendar", "get_stats"} <= names
    assert APPS["journal"].uri not in uris
    assert APPS["calendar"].uri in uris
