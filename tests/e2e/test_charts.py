"""Charts: the newest file in the allowed folders, and the chart the model can see."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ImageContent
from PIL import Image

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import DEMO_KEY, SandboxConfig, create_app, serve_in_thread

from ..kit import data_of, plain_trade, png_bytes, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _new_trade(client: Client, pnl: float) -> int:
    data = data_of(await client.call_tool("create_trade", plain_trade(pnl)))
    return int(data["trade_number"])


async def test_latest_takes_the_newest_of_two_files_over_stdio(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    older, newer = charts / "older.png", charts / "newer.png"
    older.write_bytes(png_bytes((200, 10, 10)))
    newer.write_bytes(png_bytes((10, 200, 10)))
    now = time.time()
    os.utime(older, (now - 60, now - 60))
    os.utime(newer, (now - 5, now - 5))
    # A link to a newer file outside the folder is not followed.
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes((1, 2, 3)))
    (charts / "escape.png").symlink_to(outside)
    app = create_app(SandboxConfig(db=":memory:"))
    with serve_in_thread(app) as base_url:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tradavity_mcp", "--allowed-dir", str(charts)],
            env={
                "TRADAVITY_API_KEY": DEMO_KEY,
                "TRADAVITY_BASE_URL": base_url,
                "TRADAVITY_STATE_DIR": str(tmp_path / "state"),
            },
        )
        async with Client(params) as client:
            number = await _new_trade(client, 12.5)
            result = await client.call_tool(
                "attach_screenshot", {"trade_number": number, "latest": True}
            )
            data = data_of(result)
            assert data["outcome"] == "done"
            assert data["file"] == str(newer.resolve())
            assert "newer.png" in text_of(result)
            # journal_trade's screenshot part, with a window that holds only the newer.
            journal = await client.call_tool(
                "journal_trade",
                {
                    "trade": plain_trade(3.0),
                    "screenshot": {"latest": True, "window": "the last 30 seconds"},
                },
            )
            steps = data_of(journal)["steps"]
            assert steps["screenshot"] == f"done: {newer.resolve()}", steps
            second = int(data_of(journal)["trade_number"])
        async with TradavityClient(DEMO_KEY, base_url=base_url) as api:
            for trade in (number, second):
                shots = await api.list_screenshots(trade)
                assert len(shots) == 1
                assert shots[0].file_type == "png"


async def test_latest_in_an_empty_folder_says_so(env: Env) -> None:
    async with Client(env.server()) as client:
        number = await _new_trade(client, 4.0)
        result = await client.call_tool(
            "attach_screenshot", {"trade_number": number, "latest": True}
        )
        assert result.is_error
        said = text_of(result)
        assert "no PNG or JPEG file in the allowed folders" in said
        assert str(env.charts.resolve()) in said
        # An old file does not count inside a window.
        old = env.charts / "old.png"
        old.write_bytes(png_bytes())
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        windowed = await client.call_tool(
            "attach_screenshot",
            {"trade_number": number, "latest": True, "window": "last 10 minutes"},
        )
        assert windowed.is_error
        assert "modified in that window" in text_of(windowed)
        bad = await client.call_tool(
            "attach_screenshot", {"trade_number": number, "latest": True, "window": "soon"}
        )
        assert bad.is_error
        assert "window takes a span" in text_of(bad)
        assert "'soon'" in text_of(bad)
    assert await env.api.list_screenshots(number) == []


def _noisy_png(size: int) -> bytes:
    """A PNG of about `size` bytes that does not compress (random pixels)."""
    side = int((size / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


async def test_get_trade_shows_a_big_chart_scaled_down_text_first(env: Env) -> None:
    big = _noisy_png(1_000_000)
    assert len(big) >= 1_000_000
    async with Client(env.server()) as client:
        number = await _new_trade(client, 9.0)
        data = data_of(
            await client.call_tool(
                "attach_screenshot",
                {
                    "trade_number": number,
                    "data": base64.b64encode(big).decode(),
                    "filename": "big.png",
                    "label": "Entry",
                },
            )
        )
        result = await client.call_tool("get_trade", {"trade_number": number})
        assert not result.is_error, text_of(result)
        kinds = [c.type for c in result.content]
        assert kinds[0] == "text"
        images = [c for c in result.content if isinstance(c, ImageContent)]
        assert len(images) == 1
        assert len(images[0].data) <= 300_000
        shown = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
        assert shown.size[0] > 100  # still a picture one can read, not a thumbnail
        assert f"Screenshot {data['screenshot_id']} (Entry):" in text_of(result)
        # The text block is the trade, as before.
        assert json.loads(result.content[0].text)["trade_number"] == number  # type: ignore[union-attr]
        without = await client.call_tool(
            "get_trade", {"trade_number": number, "include_images": False}
        )
        assert [c.type for c in without.content] == ["text"]


async def test_get_trade_keeps_a_small_chart_as_it_is(env: Env) -> None:
    small = png_bytes((5, 6, 7))
    async with Client(env.server()) as client:
        number = await _new_trade(client, 1.0)
        await client.call_tool(
            "attach_screenshot",
            {
                "trade_number": number,
                "data": base64.b64encode(small).decode(),
                "filename": "small.png",
            },
        )
        result = await client.call_tool("get_trade", {"trade_number": number})
        images = [c for c in result.content if isinstance(c, ImageContent)]
        assert [base64.b64decode(i.data) for i in images] == [small]
        assert images[0].mime_type == "image/png"
