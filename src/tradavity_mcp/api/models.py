"""Request bodies and response shapes for the Tradavity API v1.

Request models mirror the documented allow-lists, enums and bounds of the endpoints we
write to, and forbid unknown fields like the API does, so a bad body is refused here,
field by field, before any HTTP is sent. They are strict where Python would be loose: a
boolean is never a number or an id, numbers are finite and bounded, text carries no NUL
or control characters, and enum values are matched in any case. Response models are
tolerant: unknown fields are kept and most fields are optional, so an API that grows
does not break us.

Reusable pieces for argument models elsewhere: `StrictNumber`, `StrictInt`, `StrictId`,
`CleanText`, `AnyCase`, and `plain_validation_message` for errors in plain words.
"""

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "ASSET_TYPES",
    "BIASES",
    "DIRECTIONS",
    "EXIT_TYPES",
    "GRADES",
    "ITEM_TYPES",
    "MARKET_CONDITIONS",
    "MAX_ID",
    "MAX_NUMBER",
    "PROTOCOL_TYPES",
    "SESSIONS",
    "VOLUMES",
    "Account",
    "AnyCase",
    "ApiModel",
    "AutosyncConnection",
    "CleanText",
    "ConfirmationAnswer",
    "ConfirmationsReplace",
    "Execution",
    "ExecutionFill",
    "ExecutionsReplace",
    "ItemType",
    "Me",
    "Protocol",
    "ProtocolItem",
    "ProtocolResponseCreate",
    "ProtocolResponsePatch",
    "ProtocolSection",
    "ProtocolType",
    "RequestBody",
    "Screenshot",
    "Strategy",
    "StrictId",
    "StrictInt",
    "StrictNumber",
    "SyncResult",
    "Tag",
    "TagCategory",
    "TagCategoryCreate",
    "TagCreate",
    "TagsReplace",
    "Trade",
    "TradeCreate",
    "TradePatch",
    "TradeRow",
    "check_text",
    "format_datetime",
    "format_decimal",
    "plain_validation_fields",
    "plain_validation_message",
]

# --- documented allow-lists -------------------------------------------------------------

Direction = Literal["long", "short"]
Grade = Literal["A+", "A", "B", "C", "F"]
AssetType = Literal["futures", "forex", "stocks", "options", "crypto"]
MarketCondition = Literal["trending", "ranging", "choppy", "breakout"]
Session = Literal["asian", "london", "newyork", "overlap"]
Volume = Literal[
    "very_low", "low", "below_average", "average", "above_average", "high", "very_high"
]
Bias = Literal["Bullish", "Bearish", "Neutral"]
ExitType = Literal[
    "Take Profit",
    "Stop Loss",
    "Trailing Stop",
    "Partial / Scale Out",
    "Breakeven",
    "Time-Based",
    "Manual",
]
ProtocolType = Literal["pre_market", "pre_trade", "in_trade", "post_trade", "end_of_day", "weekly"]
ItemType = Literal["checkbox", "yes_no_na", "rating", "text", "select", "number"]

# The same allow-lists as tuples, for membership checks and messages.
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
GRADES: tuple[Grade, ...] = get_args(Grade)
ASSET_TYPES: tuple[AssetType, ...] = get_args(AssetType)
MARKET_CONDITIONS: tuple[MarketCondition, ...] = get_args(MarketCondition)
SESSIONS: tuple[Session, ...] = get_args(Session)
VOLUMES: tuple[Volume, ...] = get_args(Volume)
BIASES: tuple[Bias, ...] = get_args(Bias)
EXIT_TYPES: tuple[ExitType, ...] = get_args(ExitType)
PROTOCOL_TYPES: tuple[ProtocolType, ...] = get_args(ProtocolType)
ITEM_TYPES: tuple[ItemType, ...] = get_args(ItemType)

# --- wire formatting ---------------------------------------------------------------------


def format_decimal(value: Decimal) -> int | float | str:
    """A JSON number when it round-trips exactly, else the documented numeric string."""
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return format(value, "f")


def format_datetime(value: datetime) -> str:
    """ISO 8601 UTC with a `Z`, the API's own format. Naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_datetime(value: object) -> object:
    # The API stores a date-only value as midnight UTC; do the same so bounds apply.
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    return value


# --- strict, reusable field types --------------------------------------------------------

#: Largest magnitude any number may have (every documented bound lies below it).
MAX_NUMBER = Decimal("1e15")
#: Largest id the API issues (a signed 32-bit integer).
MAX_ID = 2_147_483_647
#: Characters that never belong in text sent to the API (tab, LF and CR do).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _shown(value: object) -> str:
    """A value as the caller sent it (JSON spelling for true/false/null), shortened."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _strict_number(value: object) -> object:
    # JSON numbers and number-looking strings; never a boolean (Python counts True as
    # 1), never NaN or infinity, never beyond MAX_NUMBER (a "1e400" would otherwise go
    # out as a 401-digit string).
    if isinstance(value, bool):
        raise PydanticCustomError(
            "strict_number", "takes a number; got {given}", {"given": _shown(value)}
        )
    number: Decimal
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except (ArithmeticError, ValueError):
            raise PydanticCustomError(
                "strict_number", "takes a number, e.g. 12.5; got {given}", {"given": _shown(value)}
            ) from None
    elif isinstance(value, int | float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError(
                "strict_number", "takes a finite number; got {given}", {"given": _shown(value)}
            )
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    else:
        raise PydanticCustomError(
            "strict_number", "takes a number; got {given}", {"given": _shown(value)}
        )
    if not number.is_finite():
        raise PydanticCustomError(
            "strict_number", "takes a finite number; got {given}", {"given": _shown(value)}
        )
    if abs(number) >= MAX_NUMBER:
        raise PydanticCustomError(
            "strict_number",
            "takes a number below 1,000,000,000,000,000 in size; got {given}",
            {"given": _shown(value)},
        )
    return number


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
        return int(value)
    return None


def _strict_int(value: object) -> object:
    # Whole numbers: JSON integers, integral floats (2.0) and digit strings ("12");
    # never a boolean.
    number = _whole(value)
    if number is None:
        raise PydanticCustomError(
            "strict_int", "takes a whole number; got {given}", {"given": _shown(value)}
        )
    return number


def _strict_id(value: object) -> object:
    number = None if isinstance(value, bool) else _whole(value)
    if number is None or not 1 <= number <= MAX_ID:
        raise PydanticCustomError(
            "strict_id",
            "takes an id (a whole number from 1); got {given}",
            {"given": _shown(value)},
        )
    return number


def check_text(value: str) -> str:
    """`value` unchanged, or ValueError if it holds NUL or another control character
    (tab, newline and carriage return are text)."""
    bad = _CONTROL.search(value)
    if bad is not None:
        raise PydanticCustomError(
            "control_character",
            "contains a control character (U+{code} at position {at}); send plain text",
            {"code": f"{ord(bad.group()):04X}", "at": bad.start()},
        )
    return value


class AnyCase:
    """Marker for `Annotated[Literal[...], AnyCase]`: the values are accepted in any case
    and with surrounding spaces, and come out as written in the Literal (`"Long"` is
    `"long"`, `"take profit"` is `"Take Profit"`). Anything else fails as the Literal
    would, listing the values. The JSON schema is the Literal's enum."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        values = [v for v in get_args(source) if isinstance(v, str)]
        if get_origin(source) is not Literal or not values:
            raise TypeError("AnyCase annotates a Literal of strings")
        by_fold = {v.casefold(): v for v in values}

        def fold(value: object) -> object:
            if isinstance(value, str):
                return by_fold.get(value.strip().casefold(), value)
            return value

        return core_schema.no_info_before_validator_function(fold, handler(source))


#: A finite number (JSON number or numeric string, never a boolean) below `MAX_NUMBER`
#: in size, as an exact `Decimal`, sent as a JSON number when exact. Add bounds with
#: `Field(ge=..., le=...)`.
StrictNumber = Annotated[
    Decimal,
    BeforeValidator(_strict_number),
    PlainSerializer(format_decimal, when_used="json"),
]
#: A whole number (JSON integer, integral float or digit string; never a boolean).
StrictInt = Annotated[int, BeforeValidator(_strict_int)]
#: An id: a whole number from 1 to `MAX_ID` (never a boolean: `true` is not id 1).
StrictId = Annotated[int, BeforeValidator(_strict_id)]
#: Text without NUL or control characters (tab, newline and carriage return allowed);
#: never a number or boolean coerced to text.
CleanText = Annotated[str, AfterValidator(check_text)]


# --- plain-word validation messages -----------------------------------------------------


_TYPE_TAG = re.compile(
    r"^(str|int|float|bool|decimal|date|datetime|time|none|list|dict|tuple)$|\[|^function-"
)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif index > 0 and _TYPE_TAG.search(part):
            continue  # pydantic's names for union members and validator layers
        else:
            out += f".{part}" if out else part
    return out


_PLAIN: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda c: "is required",
    "extra_forbidden": lambda c: "is not a field this accepts",
    "literal_error": lambda c: f"must be one of {c.get('expected', '')}",
    "enum": lambda c: f"must be one of {c.get('expected', '')}",
    "int_type": lambda c: "takes a whole number",
    "int_parsing": lambda c: "takes a whole number",
    "int_from_float": lambda c: "takes a whole number",
    "float_type": lambda c: "takes a number",
    "float_parsing": lambda c: "takes a number",
    "decimal_type": lambda c: "takes a number",
    "decimal_parsing": lambda c: "takes a number",
    "finite_number": lambda c: "takes a finite number",
    "bool_type": lambda c: "takes true or false",
    "bool_parsing": lambda c: "takes true or false",
    "string_type": lambda c: "takes text",
    "list_type": lambda c: "takes a list",
    "dict_type": lambda c: "takes an object (a mapping of names to values)",
    "model_type": lambda c: "takes an object (a mapping of names to values)",
    "model_attributes_type": lambda c: "takes an object (a mapping of names to values)",
    "datetime_type": lambda c: "takes a date and time, e.g. 2026-05-10T14:32",
    "datetime_parsing": lambda c: "takes a date and time, e.g. 2026-05-10T14:32",
    "datetime_from_date_parsing": lambda c: "takes a date and time, e.g. 2026-05-10T14:32",
    "date_type": lambda c: "takes a date, e.g. 2026-05-10",
    "date_parsing": lambda c: "takes a date, e.g. 2026-05-10",
    "date_from_datetime_parsing": lambda c: "takes a date, e.g. 2026-05-10",
    "greater_than": lambda c: f"must be greater than {c.get('gt')}",
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "string_too_short": lambda c: (
        "must not be empty"
        if c.get("min_length") == 1
        else f"takes at least {c.get('min_length')} characters"
    ),
    "string_too_long": lambda c: f"takes at most {c.get('max_length')} characters",
    "too_short": lambda c: f"takes at least {c.get('min_length')} items",
    "too_long": lambda c: f"takes at most {c.get('max_length')} items",
    "string_pattern_mismatch": lambda c: f"must match {c.get('pattern')}",
    "union_tag_invalid": lambda c: f"must be one of {c.get('expected_tags', '')}",
}


def _reason(err: Any) -> str:
    kind = str(err.get("type", ""))
    ctx = dict(err.get("ctx") or {})
    plain = _PLAIN.get(kind)
    if plain is not None:
        return plain(ctx)
    msg = str(err.get("msg", "is not valid"))
    for lead in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(lead)
    if kind.startswith(("strict_", "control_character")):
        return msg  # our own wording, already plain
    return msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg


_NO_VALUE_SHOWN = {
    "missing",
    "extra_forbidden",
    "control_character",
    "string_too_long",
    "text_too_many_bytes",
    "invalid_base64",
}


def _plain_errors(exc: ValidationError) -> list[tuple[str, str]]:
    reasons: dict[str, list[str]] = {}
    given: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        where = _where(tuple(err.get("loc", ())))
        reason = _reason(err)
        kind = str(err.get("type", ""))
        custom = kind.startswith(("strict_", "control_character"))
        if not custom and kind not in _NO_VALUE_SHOWN and "input" in err and where:
            given.setdefault(where, _shown(err["input"]))
        known = reasons.setdefault(where, [])
        if reason not in known:
            known.append(reason)
    out: list[tuple[str, str]] = []
    for where, found in reasons.items():
        # A union fails once per member: "takes text" and "takes a whole number" are
        # one reason, "takes text or a whole number".
        if len(found) > 1 and all(r.startswith("takes ") for r in found):
            reason = "takes " + " or ".join(r.removeprefix("takes ") for r in found)
        else:
            reason = ", or ".join(found)
        if where in given:
            reason += f"; got {given[where]}"
        out.append((where, reason))
    return out


def plain_validation_fields(exc: ValidationError) -> dict[str, str]:
    """Each offending field (dotted path, `[i]` for list items; `arguments` for a rule
    across fields) and what is wrong with it, in plain words, with the value given
    where it helps. No pydantic URLs or type names."""
    return {where or "arguments": reason for where, reason in _plain_errors(exc)}


def plain_validation_message(exc: ValidationError, prefix: str = "") -> str:
    """Every error of `exc` in one line, a clause per field: the field, what it
    accepts, the value given (`net_pnl takes a number; got true; trade_date is
    required`). `prefix` goes before each field name (e.g. `"fills[0]."`); a rule
    across fields is stated on its own."""
    return "; ".join(
        f"{prefix}{where} {reason}" if where else reason for where, reason in _plain_errors(exc)
    )


_DecimalOut = PlainSerializer(format_decimal, when_used="json")
_DatetimeOut = PlainSerializer(format_datetime, when_used="json")


_Number = BeforeValidator(_strict_number)
_D = Decimal

PnL = Annotated[
    Decimal, _Number, Field(ge=_D("-999999999999999.99"), le=_D("999999999999999.99")), _DecimalOut
]
Quantity = Annotated[Decimal, _Number, Field(ge=_D("0"), le=_D("9999999999.99")), _DecimalOut]
Multiplier = Annotated[
    Decimal, _Number, Field(ge=_D("-99999999.99"), le=_D("99999999.99")), _DecimalOut
]
Ratio = Multiplier
# Prices are DECIMAL(18,8): at least 1e-8 (so strictly positive), at most 9,999,999,999.99.
Price = Annotated[Decimal, _Number, Field(ge=_D("0.00000001"), le=_D("9999999999.99")), _DecimalOut]
ApiDateTime = Annotated[datetime, BeforeValidator(_to_datetime), _DatetimeOut]
#: The notes' limit is 65,535 bytes of UTF-8 (a MySQL TEXT column), not characters: a
#: note in Cyrillic or with emoji reaches it with far fewer characters.
LONG_TEXT_BYTES = 65535


def _within_bytes(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > LONG_TEXT_BYTES:
        raise PydanticCustomError(
            "text_too_many_bytes",
            "takes at most {limit} bytes of UTF-8 text; this is {size} bytes ({chars} characters)",
            {"limit": f"{LONG_TEXT_BYTES:,}", "size": f"{size:,}", "chars": f"{len(value):,}"},
        )
    return value


LongText = Annotated[CleanText, AfterValidator(_within_bytes)]
_Int = BeforeValidator(_strict_int)


def _refuse_control(value: object) -> object:
    # Anywhere in a body: the API would strip NUL silently and store other control
    # characters as they are; both are refused here, naming the field.
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control(key)
            _refuse_control(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_control(item)
    return value


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are an error, like on the API."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, str_strip_whitespace=False, defer_build=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_control(cls, value: object) -> object:
        return _refuse_control(value)

    def to_json(self) -> dict[str, Any]:
        """The wire body: only the fields that were set, including explicit nulls."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _check_trade_date(value: datetime, *, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    if aware < datetime(2000, 1, 1, tzinfo=UTC):
        raise ValueError("must be on or after 2000-01-01")
    # "Rejected if > tomorrow": allow anything up to the end of tomorrow (UTC).
    end_of_tomorrow = datetime.combine(now.date() + timedelta(days=2), time(0, 0), tzinfo=UTC)
    if aware >= end_of_tomorrow:
        raise ValueError("must not be later than tomorrow")
    return aware


class _ForexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    lot_type: Annotated[Literal["standard", "mini", "micro"], AnyCase] | None = None
    pip_value: StrictNumber | None = None


class _OptionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    option_type: Annotated[Literal["call", "put"], AnyCase] | None = None
    strike_price: StrictNumber | None = None
    expiration: date | None = None


class _TradeQualitative(RequestBody):
    """Fields shared by create and patch."""

    trade_quality_grade: Annotated[Grade, AnyCase] | None = None
    emotional_state: Annotated[CleanText, Field(min_length=1, max_length=100)] | None = None
    bias: Annotated[Bias, AnyCase] | None = None
    confidence_level: Annotated[int, _Int, Field(ge=1, le=10)] | None = None
    market_condition: Annotated[MarketCondition, AnyCase] | None = None
    trading_session: Annotated[Session, AnyCase] | None = None
    exit_type: Annotated[ExitType, AnyCase] | None = None
    setup_quality: Annotated[CleanText, Field(max_length=100)] | None = None
    news_events: LongText | None = None
    volume: Annotated[Volume, AnyCase] | None = None
    strategy_id: StrictId | None = None
    setup_id: StrictId | None = None
    sl_price: Price | None = None
    tp_price: Price | None = None
    thought_process: LongText | None = None
    mistakes_made: LongText | None = None
    learning_notes: LongText | None = None
    general_notes: LongText | None = None


class TradeCreate(_TradeQualitative):
    """Body of `POST /trades`."""

    account_id: StrictId
    trade_date: ApiDateTime
    symbol: Annotated[CleanText, Field(min_length=1, max_length=50)]
    direction: Annotated[Direction, AnyCase]
    net_pnl: PnL
    gross_pnl: PnL | None = None
    fees: PnL | None = None
    quantity: Quantity | None = None
    multiplier: Multiplier | None = None
    asset_type: Annotated[AssetType, AnyCase] | None = None
    asset_config: dict[str, Any] | None = None
    total_points: PnL | None = None
    rr_expected: Ratio | None = None
    rr_realized: Ratio | None = None
    holding_time: Annotated[int, _Int, Field(ge=0, le=2_147_483_647)] | None = None

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        value = value.strip().upper()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("trade_date")
    @classmethod
    def _trade_date(cls, value: datetime) -> datetime:
        return _check_trade_date(value)

    @model_validator(mode="after")
    def _asset_config(self) -> Self:
        if self.setup_id is not None and self.strategy_id is None:
            raise ValueError("setup_id needs strategy_id: a setup belongs to a strategy")
        if self.asset_config is None:
            return self
        if self.asset_type == "forex":
            _ForexConfig.model_validate(self.asset_config)
        elif self.asset_type == "options":
            _OptionsConfig.model_validate(self.asset_config)
        return self


class TradePatch(_TradeQualitative):
    """Body of `PATCH /trades/{n}`: only the qualitative fields; core fields are immutable."""

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("nothing to change: pass at least one field")
        return self


class TagsReplace(RequestBody):
    """Body of `PUT /trades/{n}/tags`: the whole set (empty clears)."""

    tag_ids: Annotated[list[StrictId], Field(max_length=100)]

    @field_validator("tag_ids")
    @classmethod
    def _dedupe(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class ConfirmationAnswer(RequestBody):
    confirmation_id: StrictId
    was_present: bool | None = None
    notes: LongText | None = None


class ConfirmationsReplace(RequestBody):
    """Body of `PUT /trades/{n}/confirmations`."""

    confirmations: Annotated[list[ConfirmationAnswer], Field(max_length=200)]


def _check_execution_time(value: datetime) -> datetime:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    if aware < datetime(2000, 1, 1, tzinfo=UTC):
        raise ValueError("must be on or after 2000-01-01")
    if aware > datetime.now(UTC) + timedelta(hours=24):
        raise ValueError("must not be more than 24 hours in the future")
    return aware


class ExecutionFill(RequestBody):
    price: Price
    quantity: Price  # same documented bounds as price
    execution_time: ApiDateTime | None = None
    sort_order: Annotated[int, _Int, Field(ge=-MAX_ID, le=MAX_ID)] | None = None

    @field_validator("execution_time")
    @classmethod
    def _time(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_execution_time(value)


class ExecutionsReplace(RequestBody):
    """Body of `PUT /trades/{n}/executions`: replaces every fill."""

    entries: list[ExecutionFill] | None = None
    exits: list[ExecutionFill] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.entries is None and self.exits is None:
            raise ValueError("pass entries and/or exits (use empty lists to clear all fills)")
        if len(self.entries or []) + len(self.exits or []) > 200:
            raise ValueError("at most 200 executions per trade (entries + exits)")
        return self


class TagCategoryCreate(RequestBody):
    name: Annotated[CleanText, Field(min_length=1, max_length=50)]


class TagCreate(RequestBody):
    category_id: StrictId
    name: Annotated[CleanText, Field(min_length=1, max_length=100)]
    color: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")] | None = None


def _item_value(value: object) -> object:
    # An answer: text, or a finite number of sane size; never a boolean (the API wants
    # "1"/"0" for a checkbox, which the checklist tools produce).
    if isinstance(value, bool):
        raise PydanticCustomError(
            "strict_item", "takes text or a number; got {given}", {"given": _shown(value)}
        )
    if isinstance(value, int | float):
        _strict_number(value)
    return value


ItemValue = Annotated[str | int | float, BeforeValidator(_item_value)]


def _numeric_item_ids(value: dict[str, Any] | None) -> dict[str, Any] | None:
    bad = [k for k in value or {} if not k.isdigit()]
    if bad:
        raise ValueError(f"keys must be numeric item ids, got {bad[:5]}")
    return value


class ProtocolResponseCreate(RequestBody):
    """Body of `POST /protocols/{id}/responses`. Per-item checks need the protocol's
    items, so they live with the tool; here we check the shape."""

    item_values: dict[str, ItemValue]
    trade_number: StrictId | None = None
    status: Annotated[Literal["completed", "draft"], AnyCase] | None = None

    _item_ids = field_validator("item_values")(_numeric_item_ids)


class ProtocolResponsePatch(RequestBody):
    """Body of `PATCH /protocols/{id}/responses/{response_id}`: `item_values` replaces the
    whole answer set, so a caller sends the earlier answers with the new ones."""

    item_values: dict[str, ItemValue] | None = None
    status: Annotated[Literal["completed", "draft"], AnyCase] | None = None

    _item_ids = field_validator("item_values")(_numeric_item_ids)


# --- responses (tolerant) ----------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of response models: unknown fields are kept, never fatal."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class _WithId(ApiModel):
    """A resource whose id the API names `<resource>_id`, also accepted as bare `id`."""

    _id_field: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _id_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls._id_field not in data and "id" in data:
            data = {**data, cls._id_field: data["id"]}
        return data


class TradeRow(ApiModel):
    trade_number: int
    trade_date: str | None = None
    symbol: str | None = None
    direction: str | None = None
    net_pnl: float | None = None
    account: Any = None
    grade: str | None = None
    strategy: Any = None
    setup: Any = None
    top_tag: Any = None
    is_copy: bool | None = None


class Execution(ApiModel):
    execution_id: int | None = None
    type: str | None = None
    price: float | None = None
    quantity: float | None = None
    execution_time: str | None = None
    sort_order: Annotated[int, _Int, Field(ge=-MAX_ID, le=MAX_ID)] | None = None


class Tag(_WithId):
    _id_field: ClassVar[str] = "tag_id"
    id: int = Field(validation_alias="tag_id")
    name: str
    category_id: int | None = None
    category: Any = None
    color: str | None = None
    type: str | None = None


class TagCategory(_WithId):
    _id_field: ClassVar[str] = "category_id"
    id: int = Field(validation_alias="category_id")
    name: str


class Screenshot(ApiModel):
    screenshot_id: int
    trade_number: int | None = None
    file_type: str | None = None
    file_size: int | None = None
    label: str | None = None
    sort_order: Annotated[int, _Int, Field(ge=-MAX_ID, le=MAX_ID)] | None = None
    download_url: str | None = None


class Trade(ApiModel):
    trade_number: int
    trade_date: str | None = None
    symbol: str | None = None
    direction: str | None = None
    quantity: float | None = None
    net_pnl: float | None = None
    gross_pnl: float | None = None
    fees: float | None = None
    grade: str | None = None
    emotional_state: str | None = None
    account: Any = None
    strategy: Any = None
    setup: Any = None
    executions: list[Execution] = Field(default_factory=list)
    tags: list[dict[str, Any]] = Field(default_factory=list)
    confirmations: list[dict[str, Any]] = Field(default_factory=list)
    screenshots: list[dict[str, Any]] = Field(default_factory=list)
    protocol_responses: list[dict[str, Any]] = Field(default_factory=list)


class Account(_WithId):
    _id_field: ClassVar[str] = "account_id"
    id: int = Field(validation_alias="account_id")
    account_name: str
    account_type: str | None = None
    currency: str | None = None
    broker_key: str | None = None
    is_archived: bool | None = None


class Strategy(_WithId):
    _id_field: ClassVar[str] = "strategy_id"
    id: int = Field(validation_alias="strategy_id")
    name: str
    setups: list[dict[str, Any]] = Field(default_factory=list)


class ProtocolItem(ApiModel):
    item_id: int
    item_type: str
    label: str
    options: list[str] | None = None
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "item_id" not in data and "id" in data:
                data = {**data, "item_id": data["id"]}
            if "required" not in data and "is_required" in data:
                data = {**data, "required": data["is_required"]}
        return data


class ProtocolSection(ApiModel):
    name: str | None = None
    items: list[ProtocolItem] = Field(default_factory=list)


class Protocol(_WithId):
    _id_field: ClassVar[str] = "protocol_id"
    protocol_id: int
    name: str
    type: str | None = None
    is_active: bool | None = None
    is_default: bool | None = None
    sections: list[ProtocolSection] = Field(default_factory=list)

    @property
    def items(self) -> list[ProtocolItem]:
        return [item for section in self.sections for item in section.items]


class AutosyncConnection(ApiModel):
    connection_id: int
    broker_key: str | None = None
    broker_name: str | None = None
    account_id: int | None = None
    account_name: str | None = None
    is_active: bool | None = None
    status: str | None = None
    token_status: str | None = None
    last_sync_at: str | None = None
    next_sync_at: str | None = None


class SyncResult(ApiModel):
    connection_id: int
    log_id: int | None = None
    imported: int = 0
    skipped: int = 0
    total_fetched: int = 0
    total_trades: int | None = None
    total_pnl: float | None = None
    errors: list[Any] = Field(default_factory=list)
    message: str | None = None


#: Every scope the reference's catalog lists: what a key whose `/me` does not say its
#: scopes is taken to have, so that nothing is hidden and the API's 403 answers instead.
DOCUMENTED_SCOPES = frozenset(
    f"{verb}:{resource}"
    for resource in (
        "trades", "accounts", "balance", "goals", "protocols", "tags", "strategies",
        "screenshots", "copy_groups", "autosync", "settings",
    )
    for verb in ("read", "write")
) | {"read:catalog"}  # fmt: skip

#: Where `/me` may carry the key's scopes, in the order looked at. The reference says
#: `/me` returns them without naming the field; the sandbox sends `key.scopes`.
SCOPE_PLACES = ("key.scopes", "key.scope", "scopes", "scope")


class Me(ApiModel):
    user: dict[str, Any] = Field(default_factory=dict)
    plan: Any = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    key: dict[str, Any] = Field(default_factory=dict)
    rate_tier: Any = None
    #: Top-level `scopes`/`scope`, in case the API puts them beside `key`.
    top_scopes: Any = Field(default=None, alias="scopes")
    top_scope: Any = Field(default=None, alias="scope")

    @property
    def scopes_at(self) -> str | None:
        """Where the key's scopes were found (one of `SCOPE_PLACES`), or None."""
        for place, raw in zip(SCOPE_PLACES, self._scope_values(), strict=True):
            if _scope_set(raw) is not None:
                return place
        return None

    @property
    def scopes(self) -> frozenset[str]:
        """The key's scopes; every documented scope when `/me` does not say (see
        `scopes_at`), so a guess about where they are never hides a tool."""
        for raw in self._scope_values():
            found = _scope_set(raw)
            if found is not None:
                return found
        return DOCUMENTED_SCOPES

    def _scope_values(self) -> tuple[Any, ...]:
        return (self.key.get("scopes"), self.key.get("scope"), self.top_scopes, self.top_scope)

    @property
    def timezone(self) -> str:
        return str(self.preferences.get("timezone") or "UTC")


def _scope_set(raw: Any) -> frozenset[str] | None:
    """A list of scopes, or one string of them separated by spaces or commas (OAuth's
    form); None for anything else."""
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    if isinstance(raw, str) and raw.strip():
        return frozenset(s for s in re.split(r"[\s,]+", raw.strip()) if s)
    return None
