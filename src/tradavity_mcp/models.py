"""Request bodies and response shapes for the Tradavity API v1.

Request models mirror the documented allow-lists, enums and bounds of the endpoints we
write to, and forbid unknown fields like the API does, so a bad body is refused here,
field by field, before any HTTP is sent. Response models are tolerant: unknown fields
are kept and most fields are optional, so an API that grows does not break us.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

__all__ = [
    "ASSET_TYPES",
    "BIASES",
    "DIRECTIONS",
    "EXIT_TYPES",
    "GRADES",
    "ITEM_TYPES",
    "MARKET_CONDITIONS",
    "PROTOCOL_TYPES",
    "SESSIONS",
    "VOLUMES",
    "Account",
    "ApiModel",
    "AutosyncConnection",
    "ConfirmationAnswer",
    "ConfirmationsReplace",
    "Execution",
    "ExecutionFill",
    "ExecutionsReplace",
    "Me",
    "Protocol",
    "ProtocolItem",
    "ProtocolResponseCreate",
    "ProtocolSection",
    "RequestBody",
    "Screenshot",
    "Strategy",
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
    "format_datetime",
    "format_decimal",
]

# --- documented allow-lists -------------------------------------------------------------

DIRECTIONS = ("long", "short")
GRADES = ("A+", "A", "B", "C", "F")
ASSET_TYPES = ("futures", "forex", "stocks", "options", "crypto")
MARKET_CONDITIONS = ("trending", "ranging", "choppy", "breakout")
SESSIONS = ("asian", "london", "newyork", "overlap")
VOLUMES = ("very_low", "low", "below_average", "average", "above_average", "high", "very_high")
BIASES = ("Bullish", "Bearish", "Neutral")
EXIT_TYPES = (
    "Take Profit",
    "Stop Loss",
    "Trailing Stop",
    "Partial / Scale Out",
    "Breakeven",
    "Time-Based",
    "Manual",
)
PROTOCOL_TYPES = ("pre_market", "pre_trade", "in_trade", "post_trade", "end_of_day", "weekly")
ITEM_TYPES = ("checkbox", "yes_no_na", "rating", "text", "select", "number")

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


def _strict_number(value: object) -> object:
    # The API accepts JSON numbers and number-looking strings, and refuses the rest
    # (and booleans, which Python would otherwise count as 0/1).
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"must be a number, not {value[:40]!r}") from None
    return value


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
LongText = Annotated[str, Field(max_length=65535)]


def _strip_nul(value: object) -> object:
    return value.replace("\x00", "") if isinstance(value, str) else value


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are an error, like on the API."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # The API strips NUL characters from strings silently; strip them here so the
        # body we hash for idempotency is the body the API stores.
        return _strip_nul(value)

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
    model_config = ConfigDict(extra="forbid")
    lot_type: Literal["standard", "mini", "micro"] | None = None
    pip_value: Annotated[Decimal, _Number, _DecimalOut] | None = None


class _OptionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    option_type: Literal["call", "put"] | None = None
    strike_price: Annotated[Decimal, _Number, _DecimalOut] | None = None
    expiration: date | None = None


class _TradeQualitative(RequestBody):
    """Fields shared by create and patch."""

    trade_quality_grade: Grade | None = None
    emotional_state: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    bias: Bias | None = None
    confidence_level: Annotated[int, Field(ge=1, le=10, strict=False)] | None = None
    market_condition: MarketCondition | None = None
    trading_session: Session | None = None
    exit_type: ExitType | None = None
    setup_quality: Annotated[str, Field(max_length=100)] | None = None
    news_events: LongText | None = None
    volume: Volume | None = None
    strategy_id: Annotated[int, Field(ge=1)] | None = None
    setup_id: Annotated[int, Field(ge=1)] | None = None
    sl_price: Price | None = None
    tp_price: Price | None = None
    thought_process: LongText | None = None
    mistakes_made: LongText | None = None
    learning_notes: LongText | None = None
    general_notes: LongText | None = None


class TradeCreate(_TradeQualitative):
    """Body of `POST /trades`."""

    account_id: Annotated[int, Field(ge=1)]
    trade_date: ApiDateTime
    symbol: Annotated[str, Field(min_length=1, max_length=50)]
    direction: Direction
    net_pnl: PnL
    gross_pnl: PnL | None = None
    fees: PnL | None = None
    quantity: Quantity | None = None
    multiplier: Multiplier | None = None
    asset_type: AssetType | None = None
    asset_config: dict[str, Any] | None = None
    total_points: PnL | None = None
    rr_expected: Ratio | None = None
    rr_realized: Ratio | None = None
    holding_time: Annotated[int, Field(ge=0, le=2_147_483_647)] | None = None

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
    def _asset_config(self) -> TradeCreate:
        if self.asset_config is None:
            return self
        if self.asset_type == "forex":
            _ForexConfig.model_validate(self.asset_config)
        elif self.asset_type == "options":
            _OptionsConfig.model_validate(self.asset_config)
        if self.setup_id is not None and self.strategy_id is None:
            raise ValueError("setup_id needs strategy_id: a setup belongs to a strategy")
        return self


class TradePatch(_TradeQualitative):
    """Body of `PATCH /trades/{n}`: only the qualitative fields; core fields are immutable."""

    @model_validator(mode="after")
    def _not_empty(self) -> TradePatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: pass at least one field")
        return self


class TagsReplace(RequestBody):
    """Body of `PUT /trades/{n}/tags`: the whole set (empty clears)."""

    tag_ids: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=100)]

    @field_validator("tag_ids")
    @classmethod
    def _dedupe(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class ConfirmationAnswer(RequestBody):
    confirmation_id: Annotated[int, Field(ge=1)]
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
    sort_order: int | None = None

    @field_validator("execution_time")
    @classmethod
    def _time(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_execution_time(value)


class ExecutionsReplace(RequestBody):
    """Body of `PUT /trades/{n}/executions`: replaces every fill."""

    entries: list[ExecutionFill] | None = None
    exits: list[ExecutionFill] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ExecutionsReplace:
        if self.entries is None and self.exits is None:
            raise ValueError("pass entries and/or exits (use empty lists to clear all fills)")
        if len(self.entries or []) + len(self.exits or []) > 200:
            raise ValueError("at most 200 executions per trade (entries + exits)")
        return self


class TagCategoryCreate(RequestBody):
    name: Annotated[str, Field(min_length=1, max_length=50)]


class TagCreate(RequestBody):
    category_id: Annotated[int, Field(ge=1)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    color: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")] | None = None


ItemValue = str | int | float


class ProtocolResponseCreate(RequestBody):
    """Body of `POST /protocols/{id}/responses`. Per-item checks need the protocol's
    items, so they live with the tool; here we check the shape."""

    item_values: dict[str, ItemValue]
    trade_number: Annotated[int, Field(ge=1)] | None = None
    status: Literal["completed", "draft"] | None = None

    @field_validator("item_values")
    @classmethod
    def _item_ids(cls, value: dict[str, ItemValue]) -> dict[str, ItemValue]:
        bad = [k for k in value if not k.isdigit()]
        if bad:
            raise ValueError(f"keys must be numeric item ids, got {bad[:5]}")
        return value


# --- responses (tolerant) ----------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of response models: unknown fields are kept, never fatal."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


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
    sort_order: int | None = None


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
    sort_order: int | None = None
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


class Me(ApiModel):
    user: dict[str, Any] = Field(default_factory=dict)
    plan: Any = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    key: dict[str, Any] = Field(default_factory=dict)
    rate_tier: Any = None

    @property
    def scopes(self) -> frozenset[str]:
        raw = self.key.get("scopes") or []
        return frozenset(str(s) for s in raw) if isinstance(raw, list) else frozenset()

    @property
    def timezone(self) -> str:
        return str(self.preferences.get("timezone") or "UTC")
