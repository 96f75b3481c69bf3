"""Request bodies are checked locally, field by field, before any HTTP is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from tradavity_mcp.api.errors import RequestInvalid
from tradavity_mcp.api.models import (
    AnyCase,
    CleanText,
    ExecutionsReplace,
    ProtocolResponseCreate,
    StrictId,
    StrictInt,
    StrictNumber,
    TagsReplace,
    TradeCreate,
    TradePatch,
    format_decimal,
    plain_validation_fields,
    plain_validation_message,
)
from tradavity_mcp.api.uploads import MAX_SCREENSHOT_BYTES, prepare_upload

from ._scripted import Script, make_client, ok

pytestmark = pytest.mark.anyio

BASE: dict[str, Any] = {
    "account_id": 1,
    "trade_date": "2026-05-10T14:32:00Z",
    "symbol": "MNQ",
    "direction": "long",
    "net_pnl": 48,
}

BAD_CREATES = [
    ({"direction": "up"}, "direction"),
    ({"trade_quality_grade": "B+"}, "trade_quality_grade"),
    ({"confidence_level": 11}, "confidence_level"),
    ({"quantity": "abc"}, "quantity"),
    ({"quantity": -1}, "quantity"),
    ({"sl_price": 0}, "sl_price"),
    ({"net_pnl": "1e30"}, "net_pnl"),
    ({"trade_date": "1999-12-31"}, "trade_date"),
    ({"symbol": ""}, "symbol"),
    ({"symbol": "X" * 51}, "symbol"),
    ({"exit_type": "take-profit"}, "exit_type"),
    ({"bias": "up"}, "bias"),
    ({"net_pnl": True}, "net_pnl"),
    ({"account_id": True}, "account_id"),
    ({"confidence_level": True}, "confidence_level"),
    ({"net_pnl": "1e400"}, "net_pnl"),
    ({"net_pnl": float("inf")}, "net_pnl"),
    ({"general_notes": "a\x00b"}, "general_notes"),
    ({"symbol": "MN\x07Q"}, "symbol"),
    ({"strategy_id": 1.5}, "strategy_id"),
    ({"volume": "huge"}, "volume"),
    ({"holding_time": -5}, "holding_time"),
    ({"asset_type": "bonds"}, "asset_type"),
    ({"setup_quality": "x" * 101}, "setup_quality"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("patch", "field"), BAD_CREATES)
async def test_bad_bodies_never_leave_the_process(patch: dict[str, Any], field: str) -> None:
    script = Script(ok({"trade": {"trade_number": 1}}, 201))
    async with make_client(script) as api:
        with pytest.raises(RequestInvalid) as info:
            await api.create_trade({**BASE, **patch}, idempotency_key="k")
    assert script.requests == []
    assert field in info.value.fields
    assert field in info.value.message


def test_documented_quirks_and_formats() -> None:
    body = TradeCreate.model_validate(
        {
            **BASE,
            "symbol": " mnq ",
            "quantity": "2",
            "fees": "1.24",
            "general_notes": "line one\n\tline two\r\n",
        }
    ).to_json()
    assert body["symbol"] == "MNQ"
    assert body["quantity"] == 2
    assert body["fees"] == 1.24
    assert body["general_notes"] == "line one\n\tline two\r\n"  # tab, LF and CR are text
    assert body["trade_date"] == "2026-05-10T14:32:00Z"
    # Only what was set goes on the wire.
    assert set(body) == {*BASE, "quantity", "fees", "general_notes"}


def test_date_only_and_tomorrow_bounds() -> None:
    assert (
        TradeCreate.model_validate({**BASE, "trade_date": "2026-05-10"}).to_json()["trade_date"]
        == "2026-05-10T00:00:00Z"
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=23, minute=0)
    TradeCreate.model_validate({**BASE, "trade_date": tomorrow})
    with pytest.raises(ValueError, match="tomorrow"):
        TradeCreate.model_validate({**BASE, "trade_date": tomorrow + timedelta(days=1)})


def test_asset_config_is_checked_per_asset_type() -> None:
    ok_forex = {**BASE, "asset_type": "forex", "asset_config": {"lot_type": "mini", "pip_value": 1}}
    TradeCreate.model_validate(ok_forex)
    with pytest.raises(ValueError, match="lot_type"):
        TradeCreate.model_validate({**ok_forex, "asset_config": {"lot_type": "jumbo"}})


def test_patch_keeps_explicit_nulls_and_refuses_core_fields() -> None:
    assert TradePatch.model_validate({"sl_price": None}).to_json() == {"sl_price": None}
    with pytest.raises(ValueError, match="symbol"):
        TradePatch.model_validate({"symbol": "NQ"})
    with pytest.raises(ValueError, match="nothing to change"):
        TradePatch.model_validate({})


def test_executions_shape() -> None:
    with pytest.raises(ValueError, match="entries"):
        ExecutionsReplace.model_validate({})
    assert ExecutionsReplace.model_validate({"entries": [], "exits": []}).to_json() == {
        "entries": [],
        "exits": [],
    }
    with pytest.raises(ValueError, match="price"):
        ExecutionsReplace.model_validate({"entries": [{"price": 0, "quantity": 1}]})
    fills = [{"price": 1, "quantity": 1}] * 201
    with pytest.raises(ValueError, match="200"):
        ExecutionsReplace.model_validate({"entries": fills})


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("48"), 48),
        (Decimal("1.24"), 1.24),
        (Decimal("-0.5"), -0.5),
        (Decimal("999999999999999.99"), "999999999999999.99"),
    ],
)
def test_decimals_go_out_as_exact_numbers(value: Decimal, wire: object) -> None:
    assert format_decimal(value) == wire


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
PDF = b"%PDF-1.7\n" + b"\x00" * 32


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (PNG, "chart.png", ("chart.png", "image/png")),
        (PNG, "chart.jpg", ("chart.png", "image/png")),
        (JPEG, "entry", ("entry.jpg", "image/jpeg")),
        (JPEG, "x.JPEG", ("x.JPEG", "image/jpeg")),
        (PDF, "../../etc/report.pdf", ("report.pdf", "application/pdf")),
    ],
)
def test_upload_type_comes_from_magic_bytes(
    content: bytes, name: str, expected: tuple[str, str]
) -> None:
    up = prepare_upload(content, name)
    assert (up.filename, up.mime_type) == expected


async def test_screenshots_refused_before_sending() -> None:
    script = Script(ok({"screenshot_id": 1}, 201))
    async with make_client(script) as api:
        with pytest.raises(RequestInvalid, match="PNG, JPEG or PDF"):
            await api.upload_screenshot(1, b"GIF89a...", "a.gif", idempotency_key="k")
        too_big = PNG + b"\x00" * MAX_SCREENSHOT_BYTES
        with pytest.raises(RequestInvalid, match="10 MB"):
            await api.upload_screenshot(1, too_big, "a.png", idempotency_key="k")
    assert script.requests == []


async def test_screenshot_goes_out_as_multipart() -> None:
    script = Script(ok({"screenshot_id": 9, "trade_number": 3}, 201))
    async with make_client(script) as api:
        shot = await api.upload_screenshot(3, PNG, "chart", label="Entry", idempotency_key="k")
    assert shot.screenshot_id == 9
    req = script.requests[0]
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert b'filename="chart.png"' in req.content
    assert b"Content-Type: image/png" in req.content
    assert b'name="label"' in req.content
    assert req.headers["idempotency-key"] == "k"


def test_enum_values_are_matched_in_any_case() -> None:
    body = TradeCreate.model_validate(
        {
            **BASE,
            "direction": " Long",
            "bias": "bullish",
            "exit_type": "take profit",
            "trade_quality_grade": "a+",
            "volume": "HIGH",
        }
    ).to_json()
    assert (body["direction"], body["bias"], body["exit_type"]) == (
        "long",
        "Bullish",
        "Take Profit",
    )
    assert (body["trade_quality_grade"], body["volume"]) == ("A+", "high")
    # The schema still lists the values as written.
    assert TradeCreate.model_json_schema()["properties"]["direction"]["enum"] == ["long", "short"]


class _Args(BaseModel):
    """An argument model built from the public strict types, as the tools build theirs."""

    model_config = ConfigDict(extra="forbid")

    amount: StrictNumber
    count: StrictInt | None = None
    account: StrictId | None = None
    note: CleanText | None = None
    side: Annotated[Literal["long", "short"], AnyCase] | None = None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"amount": True}, "amount takes a number; got true"),
        (
            {"amount": "1e400"},
            "amount takes a number below 1,000,000,000,000,000 in size; got '1e400'",
        ),
        ({"amount": float("nan")}, "amount takes a finite number; got nan"),
        ({"amount": "ten"}, "amount takes a number, e.g. 12.5; got 'ten'"),
        ({"amount": 1, "count": False}, "count takes a whole number; got false"),
        ({"amount": 1, "count": 2.5}, "count takes a whole number; got 2.5"),
        ({"amount": 1, "account": True}, "account takes an id (a whole number from 1); got true"),
        ({"amount": 1, "account": 0}, "account takes an id (a whole number from 1); got 0"),
        (
            {"amount": 1, "note": "a\x00"},
            "note contains a control character (U+0000 at position 1)",
        ),
        ({"amount": 1, "note": 5}, "note takes text; got 5"),
        ({"amount": 1, "side": "up"}, "side must be one of 'long' or 'short'; got 'up'"),
        ({}, "amount is required"),
        ({"amount": 1, "colour": "red"}, "colour is not a field this accepts"),
    ],
)
def test_strict_types_refuse_in_plain_words(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Args.model_validate(args)
    text = plain_validation_message(info.value)
    assert message in text
    assert "pydantic" not in text
    assert "errors.pydantic.dev" not in str(plain_validation_fields(info.value))


def test_strict_types_accept_what_people_send() -> None:
    args = _Args.model_validate(
        {"amount": "12.50", "count": "3", "account": 7.0, "note": "a\tb\n", "side": "SHORT"}
    )
    assert (args.amount, args.count, args.account, args.note, args.side) == (
        Decimal("12.50"),
        3,
        7,
        "a\tb\n",
        "short",
    )
    assert _Args.model_validate({"amount": 0.1}).model_dump(mode="json")["amount"] == 0.1


def test_messages_name_nested_fields_and_take_a_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        TagsReplace.model_validate({"tag_ids": [1, True, "x"]})
    assert plain_validation_message(info.value, "tags.") == (
        "tags.tag_ids[1] takes an id (a whole number from 1); got true; "
        "tags.tag_ids[2] takes an id (a whole number from 1); got 'x'"
    )
    with pytest.raises(ValidationError) as cross:
        TradeCreate.model_validate({**BASE, "setup_id": 3})
    assert plain_validation_message(cross.value) == (
        "setup_id needs strategy_id: a setup belongs to a strategy"
    )


@pytest.mark.parametrize(
    "values", [{"1": True}, {"1": float("inf")}, {"1": 1e400}, {"1": "a\x1b[31m"}]
)
def test_checklist_bodies_refuse_bools_infinities_and_control_characters(
    values: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as info:
        ProtocolResponseCreate.model_validate({"item_values": values})
    assert "item_values" in plain_validation_message(info.value)


def test_notes_are_limited_in_bytes_not_characters() -> None:
    """65,535 bytes of UTF-8 (the column's size): 30,000 euro signs are 90,000 bytes."""
    TradePatch.model_validate({"general_notes": "x" * 65535})
    with pytest.raises(ValidationError) as refused:
        TradePatch.model_validate({"general_notes": "€" * 30000})
    message = str(refused.value)
    assert "65,535 bytes" in message
    assert "90,000 bytes" in message
