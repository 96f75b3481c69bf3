"""Prompt templates load from prompts/, check their typed arguments, and render."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradavity_mcp.server._prompts import _parse, load_prompts

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
        prompts["weekly_review"].render({"range": "year"})
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        prompts["end_of_day_review"].render({"date": "yesterday-ish"})
    assert "Day: today" in prompts["end_of_day_review"].render({})


def test_a_placeholder_without_an_argument_fails_at_load(tmp_path: Path) -> None:
    bad = '+++\nname = "x"\n[[arguments]]\nname = "a"\n+++\nHello $a and $b\n'
    with pytest.raises(ValueError, match=r"\$b is not an argument"):
        _parse(bad, "x.md")
