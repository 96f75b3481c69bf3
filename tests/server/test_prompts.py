"""Prompt templates load from prompts/, check their typed arguments, and render."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from tradavity_mcp.server import build_server
from tradavity_mcp.server.prompts import _parse, load_prompts
from tradavity_mcp.server.when import LocalClock
from tradavity_mcp.settings import Settings

REQUIRED = {"journal_voice_note", "end_of_day_review", "weekly_review", "pre_trade_check"}


def test_the_shipped_prompts_load() -> None:
    prompts = {p.name: p for p in load_prompts()}
    assert set(prompts) >= REQUIRED
    for prompt in prompts.values():
        assert prompt.description
        # Each tells the model which of our tools to use.
        assert "`" in prompt.body


def test_typed_arguments_are_checked() -> None:
    prompts = {p.name: p for p in load_prompts()}
    text = prompts["pre_trade_check"].render({"symbol": " mnq ", "direction": "LONG"})
    assert "trade MNQ (direction: long)" in text
    with pytest.raises(ValueError, match="symbol is required"):
        prompts["pre_trade_check"].render({})
    with pytest.raises(ValueError, match="one of 7d, mtd, 30d"):
        prompts["weekly_review"].render({"range": "year"}, EVENING)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        prompts["end_of_day_review"].render({"date": "yesterday-ish"}, EVENING)


#: 19:40 on Monday 2026-12-07 in New York: already Tuesday 2026-12-08 in UTC.
EVENING = LocalClock(
    ZoneInfo("America/New_York"),
    "America/New_York",
    datetime(2026, 12, 8, 0, 40, tzinfo=UTC).timestamp(),
)


def test_today_in_a_prompt_is_the_users_local_date() -> None:
    prompts = {p.name: p for p in load_prompts()}
    review = prompts["end_of_day_review"].render({}, EVENING)
    assert "Day: 2026-12-07." in review
    assert "My today is Monday 2026-12-07 and it is now 2026-12-07 19:40 EST" in review
    assert "from_date and to_date set to 2026-12-07" in review
    voice = prompts["journal_voice_note"].render({"transcript": "long MNQ at 9:31"}, EVENING)
    assert "Times without a date are today, Monday 2026-12-07;" in voice
    assert "(America/New_York), where it is now 2026-12-07 19:40 EST" in voice
    weekly = prompts["weekly_review"].render({}, EVENING)
    assert "up to today (Monday 2026-12-07, America/New_York)" in weekly
    # The UTC date is named nowhere.
    for text in (review, voice, weekly):
        assert "2026-12-08" not in text
    # A date given is kept; a template that reads the clock is not rendered without one.
    given = prompts["end_of_day_review"].render({"date": "2026-11-20"}, EVENING)
    assert "Day: 2026-11-20." in given
    with pytest.raises(ValueError, match="needs the user's clock"):
        prompts["end_of_day_review"].render({})


def test_a_clock_field_cannot_be_an_argument() -> None:
    bad = '+++\nname = "x"\n[[arguments]]\nname = "today"\n+++\nHello $today\n'
    with pytest.raises(ValueError, match=r"\$today is the user's clock, not an argument"):
        _parse(bad, "x.md")


def test_a_placeholder_without_an_argument_fails_at_load(tmp_path: Path) -> None:
    bad = '+++\nname = "x"\n[[arguments]]\nname = "a"\n+++\nHello $a and $b\n'
    with pytest.raises(ValueError, match=r"\$b is not an argument"):
        _parse(bad, "x.md")


def _offline(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("offline")


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_bad_prompt_requests_are_invalid_params_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    settings = Settings.load(environ={"TRADAVITY_API_KEY": "tvty_" + "0" * 48}, state_dir=tmp_path)
    server = build_server(settings, transport=httpx2.MockTransport(_offline))
    caplog.set_level(logging.DEBUG)
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("weekly_reveiw", {})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("pre_trade_check", {"direction": "long"})
        with pytest.raises(MCPError) as bad_value:
            await client.get_prompt("weekly_review", {"range": "last week"})
        ok = await client.get_prompt("pre_trade_check", {"symbol": "mnq"})
    assert unknown.value.code == INVALID_PARAMS
    assert unknown.value.message == (
        "unknown prompt 'weekly_reveiw'; the prompts are end_of_day_review, "
        "journal_voice_note, pre_trade_check, weekly_review"
    )
    assert missing.value.code == INVALID_PARAMS
    assert missing.value.message == (
        "prompt pre_trade_check needs symbol (symbol: Instrument about to be traded, e.g. MNQ)"
    )
    assert bad_value.value.code == INVALID_PARAMS
    assert bad_value.value.message == "prompt weekly_review: range must be one of 7d, mtd, 30d"
    assert "MNQ" in str(ok.messages[0].content)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
