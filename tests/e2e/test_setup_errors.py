"""Setup mistakes a person can act on, as the model reads them on a stdio server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, create_app, serve_in_thread

from ..kit import text_of

pytestmark = pytest.mark.anyio


async def test_a_wrong_base_url_is_named_on_the_first_call(tmp_path: Path) -> None:
    """/api/v2 instead of /api/v1: not "that item was not found" on every call, but the
    variable to change, on the first one."""
    with serve_in_thread(create_app(SandboxConfig(db=":memory:"))) as base_url:
        wrong = base_url.replace("/api/v1", "/api/v2")
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tradavity_mcp"],
            env={
                "TRADAVITY_API_KEY": DEMO_KEY,
                "TRADAVITY_BASE_URL": wrong,
                "TRADAVITY_STATE_DIR": str(tmp_path / "state"),
            },
        )
        async with Client(params) as client:
            result = await client.call_tool("get_trade", {"trade_number": 1})
    assert result.is_error
    assert text_of(result) == (
        f"TRADAVITY_BASE_URL {wrong} is not the Tradavity API (GET /me answered 404): set it "
        "to the API's /api/v1 address, e.g. https://app.tradavity.com/api/v1, or unset it, "
        "then restart the server."
    )
