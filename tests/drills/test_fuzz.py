"""Bad input: property-based fuzzing of every tool's arguments, well- and ill-typed.

The server must never crash or hang; every failure must be a tool error that says what
to fix (not the SDK's bare "Error executing tool X" for a crash); and nothing malformed
may reach the API: the sandbox's count of validation errors it had to send stays zero.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxTransport, create_app
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import Settings

from ..kit import FAST_RETRY, SandboxTime, text_of

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
NAMES = st.sampled_from(
    [
        "FOMO",
        "fomo",
        "Breakout",
        "Apex 50K",
        "pre_trade",
        "Conviction",
        "Charts are loaded",
        "Bias",
        "calm",
        "MNQ",
        "*",
        "long",
        "yes",
        "",
    ]
)


def mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """A valid value five times in six, a near miss otherwise."""
    good = st.sampled_from(valid)
    return st.one_of(good, good, good, good, good, st.sampled_from(invalid))


ANSWERS = st.fixed_dictionaries(
    {
        "*": mostly(["yes", "no", True, "na"], ["maybe"]),
        "Bias": mostly(["long", "SHORT"], ["sideways"]),
        "Conviction": mostly([1, 5, "4"], [0, 6, 4.5]),
        "Charts are loaded": st.booleans(),
    },
    optional={"Risk in R": st.sampled_from([1.5, "2", "lots", -1]), "Plan": st.text(max_size=30)},
)
TRADE = st.fixed_dictionaries(
    {
        "symbol": mostly(["MNQ", "es", " gc "], ["X" * 51, ""]),
        "direction": mostly(["long", "short"], ["up"]),
        "net_pnl": st.floats(-5000, 5000) | st.sampled_from([0, 1e16]),
        "trade_date": mostly(
            ["2026-11-17T09:31", "2026-11-17", "now"], ["2030-01-01T00:00", "yesterday"]
        ),
        "account": mostly(["Apex 50K", "topstep xfa", 1], ["Nope"]),
    },
    optional={
        "quantity": mostly([1, 2, 0.5], [-1]),
        "fees": st.floats(0, 10),
        "trade_quality_grade": mostly(["A", "A+"], ["B+"]),
        "emotional_state": mostly(["calm", "RUSHED"], ["zen"]),
        "confidence_level": st.integers(0, 11),
        "strategy": mostly(["Trend Pullback", "Mean Reversion"], ["Nope"]),
        "setup": mostly(["VWAP Reclaim", "9 EMA Pullback"], ["Nope", "ORB Long"]),
        "sl_price": mostly([21000.25, 0.5], [0, 1e-9, -1]),
        "asset_type": st.sampled_from(["futures", "forex", "options"]),
        "asset_config": mostly(
            [{"lot_type": "mini"}, {"option_type": "put"}], [{"lot_type": "jumbo"}, {"x": 1}]
        ),
        "general_notes": st.text(max_size=50),
    },
)
#: Realistic values by argument name, so most calls get past local checks to the API.
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "trade": TRADE,
    "trade_number": st.integers(1, 40) | st.sampled_from([0, 99999]),
    "tags": st.lists(
        st.sampled_from(["FOMO", "breakout", "A+ Setup", "New Tag", 3, 999]), max_size=3
    ),
    "protocol": st.sampled_from(["pre_trade", "end_of_day", "Pre-Trade Checklist", 1, "weekly"]),
    "answers": ANSWERS,
    "connection": st.sampled_from([1, 2, "Tradovate", "rithmic", None]),
    "account": st.sampled_from(["Apex 50K", "Personal Live", 2, "Nope"]),
    "symbol": st.sampled_from(["MNQ", "es", "ZZZ"]),
    "changes": st.fixed_dictionaries(
        {},
        optional={
            "trade_quality_grade": st.sampled_from(["A", "Z"]),
            "bias": st.sampled_from(["Bullish", "bullish"]),
            "sl_price": st.sampled_from([None, 0, 5.5]),
            "general_notes": st.text(max_size=20),
            "symbol": st.just("ES"),
        },
    ),
    "executions": st.sampled_from(
        [
            {
                "entries": [{"price": 21000.25, "quantity": 1}],
                "exits": [{"price": 21010, "quantity": 1}],
            },
            {"entries": [{"price": 0, "quantity": 1}]},
            {},
            {"entries": []},
        ]
    ),
    "screenshot": st.sampled_from(
        [
            {"path": "chart.png"},
            {"data": "iVBORw0KGgo=", "filename": "a.png"},
            {"data": "@@@", "filename": "a.png"},
            {},
        ]
    ),
    "checklist": st.fixed_dictionaries(
        {"protocol": st.sampled_from(["pre_trade", "nope"]), "answers": ANSWERS}
    ),
    "name": st.sampled_from(["accounts", "tags", "protocols", "me", "instruments", "nope"]),
    "query": st.sampled_from(["pre_trade", "end_of_day", "MN", "nope"]),
    "range": st.sampled_from(["7d", "mtd", "all", "forever"]),
    "kind": st.sampled_from(["summary", "by-symbol", "by-strategy", "by-moon"]),
    "path": st.sampled_from(["chart.png", "/etc/passwd", "../chart.png"]),
    "data": st.sampled_from(["iVBORw0KGgo=", "not base64"]),
    "filename": st.sampled_from(["c.png", "c", ""]),
    "category": st.sampled_from(["Playbook", "Mistakes", "x" * 60]),
}


def _value(schema: dict[str, Any], name: str, chaos: bool) -> st.SearchStrategy[Any]:
    if chaos:
        return st.one_of(_typed(schema), JSON)
    hint = HINTS.get(name)
    return hint if hint is not None else _typed(schema, strict=True)


def _typed(schema: dict[str, Any], *, strict: bool = False) -> st.SearchStrategy[Any]:
    """Values of the advertised type, with edge cases (and near misses unless strict)."""
    kind = schema.get("type")
    if "enum" in schema:
        typed: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
        if not strict:
            typed = typed | st.text(max_size=6)
    elif kind == "integer":
        typed = st.integers(min_value=-5, max_value=300) | st.integers()
    elif kind == ["string", "integer"]:
        typed = st.integers(min_value=-5, max_value=300) | NAMES
    elif kind == "number":
        typed = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.sampled_from(
            [0, -0.0, 1e-9, 1e16, -1e16, 999999999999999.99]
        )
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "string":
        if schema.get("format") == "date":
            typed = st.dates().map(str) | st.sampled_from(["2026-02-30", "today", "11/20/2026"])
        else:
            typed = (
                NAMES
                | st.text(max_size=40)
                | st.sampled_from(["2026-11-20T09:31", "now", "2099-01-01", "x" * 70000, "a\x00b"])
            )
    elif kind == "array":
        typed = st.lists(NAMES | st.integers(min_value=0, max_value=40), max_size=4)
    elif kind == "object":
        typed = st.dictionaries(NAMES | st.text(max_size=10), JSON | NAMES, max_size=5)
    else:
        typed = JSON
    return typed


def _arguments(schema: dict[str, Any], chaos: bool) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    def field(name: str, prop: dict[str, Any]) -> st.SearchStrategy[tuple[bool, Any]]:
        # A well-typed call brings the arguments a real user would (account, tags, ...).
        always = name in required or (not chaos and name in HINTS)
        keep = st.just(True) if always else st.booleans()

        def pick(present: bool) -> st.SearchStrategy[tuple[bool, Any]]:
            if not present:
                return st.just((False, None))
            return _value(prop, name, chaos).map(lambda v: (True, v))

        return keep.flatmap(pick)

    fields = {name: field(name, prop) for name, prop in props.items()}
    extra = (
        st.dictionaries(st.text(min_size=1, max_size=8), JSON, max_size=1) if chaos else st.just({})
    )
    return st.fixed_dictionaries(fields).flatmap(
        lambda picked: extra.map(
            lambda more: {
                **{k: v for k, (keep, v) in picked.items() if keep},
                **(more if len(more) else {}),
            }
        )
    )


class World:
    def __init__(
        self, portal: BlockingPortal, client: Client, app: Any, tools: dict[str, dict[str, Any]]
    ) -> None:
        self.portal, self.client, self.app, self.tools = portal, client, app, tools

    def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        async def bounded() -> CallToolResult:
            with anyio.fail_after(20):  # "never hangs"
                return await self.client.call_tool(tool, args)

        return self.portal.call(bounded)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = Path(tmp_path_factory.mktemp("fuzz")) / "state"
    charts = state.parent / "charts"
    charts.mkdir()
    (charts / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    clock = SandboxTime()  # waits (a sync cooldown, a rate window) cost nothing here
    app = create_app(SandboxConfig(db=":memory:", clock=clock.manual))
    config = Settings.load(
        environ={"TRADAVITY_API_KEY": DEMO_KEY},
        base_url="http://sandbox.local/api/v1",
        state_dir=state,
        allowed_dirs=[str(charts)],
    )

    server = build_server(config, transport=SandboxTransport(app), retry=FAST_RETRY, clock=clock)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(server)) as client,
    ):
        tools = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}
        yield World(portal, client, app, tools)


TOOL_NAMES = [
    "create_trade",
    "journal_trade",
    "tag_trade",
    "attach_screenshot",
    "record_protocol_response",
    "trigger_sync",
    "update_trade",
    "archive_trade",
    "find_trades",
    "get_trade",
    "get_stats",
    "get_calendar",
    "lookup",
    "sync_status",
]


@settings(
    max_examples=220, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
@given(data=st.data())
def test_no_input_crashes_hangs_or_reaches_the_api_malformed(
    world: World, data: st.DataObject
) -> None:
    tool = data.draw(st.sampled_from(TOOL_NAMES), label="tool")
    chaos = data.draw(st.integers(0, 9), label="chaos") < 3  # three calls in ten are junk
    args = data.draw(_arguments(world.tools[tool], chaos), label="arguments")
    if tool == "find_trades":
        args.pop("cursor", None)  # an opaque token: only ever one the API handed out
    result = world.call(tool, args)
    message = text_of(result)
    if os.environ.get("FUZZ_TRACE"):
        print("TRACE", tool, "ERR" if result.is_error else "OK", message[:90].replace("\n", " "))
    assert message != f"Error executing tool {tool}", f"crash on {json.dumps(args)[:300]}"
    if result.is_error:
        assert len(message) > len(f"Error executing tool {tool}: ") + 8, message
    counters = world.app.state.sandbox.counters
    assert counters["validation_error"] == 0, (
        f"{tool}{json.dumps(args, default=str)[:400]} reached the API malformed: "
        f"{world.app.state.sandbox.request_log[-1]}"
    )
    assert counters.get("internal_error", 0) == 0


def test_the_fuzzer_reached_the_api(world: World) -> None:
    """Keep the property honest: it must have driven real writes, not only refusals."""
    counters = world.app.state.sandbox.counters
    assert counters["requests"] >= 50
    assert counters["writes_committed"] >= 3
