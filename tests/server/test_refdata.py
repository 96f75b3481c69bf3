"""Reference data: names matched the way a person would mean them."""

from __future__ import annotations

from tradavity_mcp.server.refdata import close_matches


def test_close_matches_are_case_insensitive() -> None:
    assert close_matches("fomo", ["FOMO", "Revenge", "Breakout"]) == ["FOMO"]
    assert close_matches("brekout", ["FOMO", "Revenge", "Breakout"])[0] == "Breakout"
