"""New names that only look like existing ones are refused, naming the characters."""

from __future__ import annotations

import pytest

from tradavity_mcp.server.lookalike import misread

KNOWN = ["FOMO", "Breakout", "Revenge"]
CYRILLIC_O = "\u041e"  # drawn exactly like a Latin O


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        (
            f"F{CYRILLIC_O}MO",
            [
                "mixes Latin letters with",
                "U+041E CYRILLIC CAPITAL LETTER O, drawn like Latin 'O'",
                "the existing 'FOMO': use that one",
            ],
        ),
        ("FO\u200dMO", ["invisible characters (U+200D ZERO WIDTH JOINER)", "existing 'FOMO'"]),
        ("Fomo\u202e", ["U+202E RIGHT-TO-LEFT OVERRIDE", "existing 'FOMO'"]),
        (
            "\uff26\uff2f\uff2d\uff2f",
            ["U+FF26 FULLWIDTH LATIN CAPITAL LETTER F", "only look like plain Latin letters"],
        ),
        (
            "\u0412reakout",
            ["U+0412 CYRILLIC CAPITAL LETTER VE, drawn like Latin 'B'", "'Breakout'"],
        ),
        ("Sc\u0430lp", ["U+0430 CYRILLIC SMALL LETTER A", "in one alphabet"]),  # no twin
        ("Late\u200b", ["U+200B ZERO WIDTH SPACE", "without hidden characters"]),
    ],
)
def test_look_alike_names_are_refused_in_words(name: str, needles: list[str]) -> None:
    why = misread(name, KNOWN)
    assert why is not None
    for needle in needles:
        assert needle in why, why


@pytest.mark.parametrize(
    "name",
    [
        "Opening Drive",
        "fomo trap",
        "\u0394-neutral",  # a Greek Delta that looks like no Latin letter
        "\u0424\u041e\u041c\u041e",  # all Cyrillic, looks like no existing tag
        "\U0001f468\u200d\U0001f4bb",  # an emoji sequence: its joiner draws one picture
        "Caf\u00e9",
    ],
)
def test_plain_names_pass(name: str) -> None:
    assert misread(name, KNOWN) is None
