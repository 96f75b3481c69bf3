"""Checklist answers: labels or ids in, the API's item values out, with plain refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tradavity_mcp.api.models import Protocol
from tradavity_mcp.server.answers import build_item_values
from tradavity_mcp.server.errors import UserError

PROTOCOL = Protocol.model_validate(
    {
        "protocol_id": 80,
        "name": "Pre-Trade Checklist",
        "type": "pre_trade",
        "sections": [
            {
                "name": "Pre-flight",
                "items": [
                    {
                        "item_id": 640,
                        "item_type": "checkbox",
                        "label": "Charts are loaded",
                        "required": True,
                    },
                    {"item_id": 641, "item_type": "yes_no_na", "label": "News today?"},
                    {
                        "item_id": 642,
                        "item_type": "select",
                        "label": "Bias",
                        "options": ["long", "short", "neutral"],
                        "required": True,
                    },
                ],
            },
            {
                "name": "Risk",
                "items": [
                    {"item_id": 643, "item_type": "rating", "label": "Conviction (1-5)"},
                    {"item_id": 644, "item_type": "number", "label": "R risk"},
                    {"item_id": 645, "item_type": "text", "label": "Plan"},
                ],
            },
        ],
    }
)


def test_answers_by_label_or_id_are_coerced() -> None:
    values = build_item_values(
        PROTOCOL,
        {
            "charts are loaded": True,
            "641": "No",
            "Bias": "LONG",
            "Conviction (1-5)": "4",
            "R risk": 1.50,
            "plan": "fade the open",
        },
        completed=True,
    )
    assert values == {
        "640": "1",
        "641": "no",
        "642": "long",
        "643": 4,
        "644": "1.5",
        "645": "fade the open",
    }


def test_star_answers_every_yes_no_item() -> None:
    values = build_item_values(PROTOCOL, {"*": "yes", "Bias": "short"}, completed=True)
    assert values == {"640": "1", "641": "yes", "642": "short"}


@pytest.mark.parametrize(
    ("answers", "needle"),
    [
        (
            {"Conviction (1-5)": 6, "Bias": "long", "Charts are loaded": True},
            "'Conviction (1-5)' (rating) accepts a whole number from 1 to 5; got 6",
        ),
        ({"Bias": "sideways", "Charts are loaded": True}, "accepts one of 'long', 'short'"),
        ({"News today?": "maybe", "Bias": "long", "Charts are loaded": 1}, "'yes', 'no' or 'na'"),
        ({"R risk": "lots", "Bias": "long", "Charts are loaded": 1}, "accepts a number"),
        ({"Charts loaded?": True, "Bias": "long"}, "did you mean 'Charts are loaded'"),
        ({"Bias": "long"}, "missing: 'Charts are loaded' (checkbox)"),
    ],
)
def test_bad_answers_name_the_item_and_what_it_accepts(
    answers: dict[str, Any], needle: str
) -> None:
    with pytest.raises(UserError) as info:
        build_item_values(PROTOCOL, answers, completed=True)
    assert needle in str(info.value)


def test_drafts_may_skip_required_items() -> None:
    assert build_item_values(PROTOCOL, {"R risk": 2}, completed=False) == {"644": "2"}
