"""One typed argument model per journaling tool, and its identity rule.

The same model serves the MCP adapter (the tool's input schema is built from its
fields), the ledger (its canonical form names and identifies the call; its stored
form is what a finished call keeps) and the resumer (a pending call's recorded
arguments are validated back into it). Each model declares next to its fields:

* `KIND`: `creates` (a new entry each time; an identical call inside the duplicate
  window is held back) or `sets` (puts something into a state; every call applies);
* `target()`: for `sets`, what it sets, so earlier unfinished calls go first.

Every model refuses what would be silently misread: a bool where a number or id is
expected, NUL and control characters, infinite numbers; enum values are matched in
any case (`"Long"` is `long`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import types
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ...api.models import AssetType, Bias, ExitType, Grade, MarketCondition, Session, Volume
from ...api.uploads import MAX_SCREENSHOT_BYTES
from ..plain import read_names
from .call import WriteKind
from .ledger import digest_arguments

__all__ = [
    "ArchiveTradeArgs",
    "AssetConfig",
    "AttachScreenshotArgs",
    "ChecklistPart",
    "CreateTradeArgs",
    "ExecutionsPart",
    "Fill",
    "JournalTradeArgs",
    "RecordProtocolResponseArgs",
    "ScreenshotPart",
    "TagTradeArgs",
    "TradeChanges",
    "TradeFields",
    "TradeNotes",
    "TriggerSyncArgs",
    "UpdateTradeArgs",
    "WriteArgs",
    "strict_value",
]

#: Characters that never belong in a journal field (tab, newline and carriage return do).
#: A pattern, not a loop over characters: a screenshot's base64 runs to millions of them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _literal_values(annotation: Any) -> tuple[str, ...]:
    """The string values of a Literal, also inside Optional/Annotated."""
    origin = get_origin(annotation)
    if origin is Literal:
        return tuple(v for v in get_args(annotation) if isinstance(v, str))
    if origin is Annotated:
        return _literal_values(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return tuple(v for a in get_args(annotation) for v in _literal_values(a))
    return ()


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        return any(_accepts_bool(a) for a in get_args(annotation))
    return annotation is Any


def _check_text(value: Any, where: str) -> None:
    """Refuse NUL/control characters and non-finite numbers anywhere in a value."""
    if isinstance(value, str):
        if len(value) > _LONG_TEXT and value.isascii() and not _ascii_has_control(value):
            return  # a chart's base64: milliseconds, where the pattern takes a tenth of a second
        bad = _CONTROL.search(value)
        if bad is not None:
            raise ValueError(
                f"{where} contains a control character ({bad.group()!r}); send plain text"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


#: Past this length, ASCII text is checked for control characters by slices of bytes.
_LONG_TEXT = 64 * 1024
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def _ascii_has_control(text: str) -> bool:
    """Whether ASCII `text` has one of `_CONTROL`'s characters: each slice's bytes with
    them deleted (C, at memory speed), compared by length; a slice at a time, so the
    text is never copied whole."""
    step = 1 << 18
    for i in range(0, len(text), step):
        chunk = text[i : i + step].encode("ascii")
        if len(chunk.translate(None, _CONTROL_BYTES)) != len(chunk):
            return True
    return False


def _has_space(text: str) -> bool:
    """Whether `text` has white space: for ASCII text (base64), a fast search for each
    of its six white-space characters rather than a pattern over millions of them."""
    if text.isascii():
        return any(c in text for c in " \t\n\r\x0b\x0c")
    return any(c.isspace() for c in text)


def strict_value(name: str, annotation: Any, value: Any) -> Any:
    """Refuse what would be silently misread, and match enum values in any case."""
    if isinstance(value, bool) and not _accepts_bool(annotation):
        raise ValueError(f"{name} takes a number or text, not {str(value).lower()}")
    _check_text(value, name)
    choices = _literal_values(annotation)
    if choices and isinstance(value, str):
        return {c.casefold(): c for c in choices}.get(value.strip().casefold(), value)
    return value


class WriteArgs(BaseModel):
    """Base of the journaling tools' argument models."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    KIND: ClassVar[WriteKind] = "creates"
    #: Fields that do not name the call (how it is run, not what it writes).
    NOT_IDENTITY: ClassVar[frozenset[str]] = frozenset({"allow_duplicate"})

    @model_validator(mode="before")
    @classmethod
    def _strict(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            if out.get(name) is not None:
                out[name] = strict_value(name, info.annotation, out[name])
        return out

    def canonical(self) -> dict[str, Any]:
        """What names the call: the arguments given, unset and default ones left out,
        so `f(x=1)` and `f(x=1, y=None)` are the same call."""
        return self.model_dump(
            mode="json", exclude_defaults=True, exclude_none=True, exclude=set(self.NOT_IDENTITY)
        )

    def stored(self) -> dict[str, Any]:
        """What the ledger keeps once the call is finished (no file contents)."""
        return self.canonical()

    def recorded(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """What the ledger keeps while the call is unfinished: the canonical arguments
        with each file as "blob:<digest>", and the files' bytes by digest."""
        return self.canonical(), {}

    @classmethod
    def from_record(cls, arguments: dict[str, Any], blobs: dict[str, bytes]) -> Self:
        """The arguments of a recorded call, its files put back."""
        return cls.model_validate(_with_blobs(arguments, blobs))

    def target(self) -> str | None:
        return None

    def trade_digest(self) -> str | None:
        return None


TradeNumber = Annotated[int, Field(ge=1)]


def _number(description: str | None = None) -> Any:
    return Field(default=None, description=description, allow_inf_nan=False)


class AssetConfig(WriteArgs):
    """forex: lot_type, pip_value; options: the others (expiration YYYY-MM-DD)"""

    lot_type: Literal["standard", "mini", "micro"] | None = None
    pip_value: float | None = _number()
    option_type: Literal["call", "put"] | None = None
    strike_price: float | None = _number()
    expiration: str | None = None


class TradeNotes(WriteArgs):
    """The fields a trade's journal entry may change after it is written (PATCH)."""

    trade_quality_grade: Grade | None = None
    emotional_state: Annotated[str | None, Field(description="e.g. calm, fomo")] = None
    bias: Bias | None = None
    confidence_level: Annotated[int | None, Field(ge=1, le=10)] = None
    exit_type: ExitType | None = None
    market_condition: MarketCondition | None = None
    trading_session: Session | None = None
    volume: Volume | None = None
    setup_quality: Annotated[str | None, Field(max_length=100)] = None
    news_events: str | None = None
    strategy: Annotated[str | int | None, Field(description="Name or id")] = None
    setup: Annotated[str | int | None, Field(description="Name or id")] = None
    sl_price: Annotated[float | None, Field(gt=0, allow_inf_nan=False)] = None
    tp_price: Annotated[float | None, Field(gt=0, allow_inf_nan=False)] = None
    thought_process: str | None = None
    mistakes_made: str | None = None
    learning_notes: str | None = None
    general_notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_names(cls, data: Any) -> Any:
        """`grade` (what reads return) is `trade_quality_grade`."""
        if not isinstance(data, dict):
            return data
        try:
            return read_names(data, "", list(cls.model_fields))
        except ValueError as exc:  # said as it is, without the value echoed
            raise PydanticCustomError("strict_read_name", str(exc)) from None


class TradeFields(TradeNotes):
    # A trade as create_trade takes it (no docstring: it would be the schema's text).

    symbol: Annotated[str, Field(description="e.g. MNQ, ES, EURUSD")]
    direction: Literal["long", "short"]
    net_pnl: Annotated[float, Field(description="Net P&L after fees", allow_inf_nan=False)]
    trade_date: Annotated[
        str, Field(description="Entry time, ISO 8601 (no offset: user's zone) or 'now'")
    ]
    account: Annotated[
        str | int | None, Field(description="Name or id; optional with one active account")
    ] = None
    quantity: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    fees: float | None = _number("In account currency")
    gross_pnl: float | None = _number("Default net_pnl + fees")
    multiplier: float | None = _number()
    asset_type: AssetType | None = None
    asset_config: AssetConfig | None = None
    total_points: float | None = _number()
    rr_expected: float | None = _number()
    rr_realized: float | None = _number()
    holding_time: Annotated[int | None, Field(ge=0, description="Seconds")] = None


class CreateTradeArgs(TradeFields):
    allow_duplicate: bool = False  # the result says when (no description: its name does)

    def trade(self) -> TradeFields:
        return TradeFields.model_validate(self.model_dump(exclude={"allow_duplicate"}))


def _with_blobs(value: Any, blobs: dict[str, bytes]) -> Any:
    if isinstance(value, str) and value.startswith(_BLOB) and value[len(_BLOB) :] in blobs:
        return base64.b64encode(blobs[value[len(_BLOB) :]]).decode("ascii")
    if isinstance(value, dict):
        return {k: _with_blobs(v, blobs) for k, v in value.items()}
    return value


_BLOB = "blob:"

_WINDOW = re.compile(
    r"(?:the\s+)?(?:last\s+|past\s+)?(\d+(?:\.\d+)?)\s*"
    r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(text: str) -> float:
    """'the last 10 minutes', '10 min', '2h' -> seconds; a clear error otherwise."""
    match = _WINDOW.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"window takes a span such as 'last 10 minutes', '2 hours' or '30m'; got {text!r}"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]


class ScreenshotPart(WriteArgs):
    """A chart: a local file (stdio) or base64 data with a filename."""

    path: Annotated[str | None, Field(description="Local file (stdio)")] = None
    data: Annotated[str | None, Field(description="Base64")] = None
    filename: Annotated[str | None, Field(description="Needed with data")] = None
    label: Annotated[str | None, Field(description="Caption, max 100 chars")] = None
    latest: Annotated[bool, Field(description="Newest image in the allowed folders")] = False
    window: Annotated[str | None, Field(description="With latest: e.g. 'last 10 minutes'")] = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            window_seconds(value)
        return value

    def window_seconds(self) -> float | None:
        return window_seconds(self.window) if self.window is not None else None

    # The file's bytes, decoded once while the arguments are checked (`_decoded`), and
    # their SHA-256 once asked for: never decoded or hashed again on the way to the upload.
    _raw: bytes | None = PrivateAttr(default=None)
    _sha256: str | None = PrivateAttr(default=None)

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        """One spelling per file (so the same file is always the same call): a data
        URL's prefix and white space dropped. Checked by size here, decoded once by
        `_decoded`; a string already in that spelling is kept as given, not copied."""
        if value is None:
            return None
        payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
        if len(payload) > (MAX_SCREENSHOT_BYTES * 4) // 3 + 64:
            raise ValueError("holds a file larger than 10 MB; Tradavity accepts at most 10 MB")
        if _has_space(payload):
            payload = "".join(payload.split())
        return payload

    @model_validator(mode="after")
    def _decoded(self) -> Self:
        if self.data is None or self._raw is not None:
            return self
        try:
            # binascii reads the ASCII string where it lies (base64.b64decode would
            # first copy it to bytes).
            raw = binascii.a2b_base64(self.data, strict_mode=True)
        except (binascii.Error, ValueError):
            # Without the value: it is the whole file (the model's check, so it names
            # the screenshot, then its data).
            raise PydanticCustomError(
                "invalid_base64",
                "data is not valid base64: send the file's bytes encoded as base64 "
                "(a data: URL works too)",
            ) from None
        # Standard base64 spells each whole group of 3 bytes one way: only the last group
        # can be spelt otherwise (unused bits set). Re-encoded only then.
        tail = len(raw) % 3 or 3
        if base64.b64encode(raw[-tail:]) != self.data[-4:].encode("ascii"):
            self.data = base64.b64encode(raw).decode("ascii")
        self._raw = raw
        return self

    def raw(self) -> bytes | None:
        return self._raw

    def sha256(self) -> str | None:
        """The file's SHA-256 (hex), worked out once."""
        if self._raw is not None and self._sha256 is None:
            self._sha256 = hashlib.sha256(self._raw).hexdigest()
        return self._sha256

    def without_bytes(self) -> dict[str, Any]:
        """Its canonical form with the file's digest and size in place of its bytes."""
        out = self.canonical()
        raw = self.raw()
        if raw is not None:
            out["data"] = f"sha256:{self.sha256()} ({len(raw)} bytes, not kept)"
        return out

    def as_blob(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Its canonical form with the file as "blob:<digest>", and the file."""
        out = self.canonical()
        raw = self.raw()
        digest = self.sha256()
        if raw is None or digest is None:
            return out, {}
        out["data"] = _BLOB + digest
        return out, {digest: raw}


#: How each checklist item type is answered.
ANSWERS_DESCRIPTION = (
    "Item label or id -> answer: true/false, yes/no/na, an option, 1-5, a number or "
    "text; '*' = all yes/no items"
)

#: A checklist's answers: one text per item. Booleans and numbers are taken too; the
#: schema says text, the one type every answer can be written as.
Answers = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "additionalProperties": {"type": "string"}}),
    Field(description=ANSWERS_DESCRIPTION),
]


class ChecklistPart(WriteArgs):
    protocol: Annotated[
        str | int, Field(description="Name, id or type (pre_trade, end_of_day, ...)")
    ]
    answers: Answers
    status: Literal["completed", "draft"] = "completed"


class Fill(WriteArgs):
    price: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    quantity: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    execution_time: str | None = None


class ExecutionsPart(WriteArgs):
    """The trade's fills (they replace any it has)."""

    entries: list[Fill] | None = None
    exits: list[Fill] | None = None


class JournalTradeArgs(WriteArgs):
    trade: TradeFields
    tags: Annotated[list[str | int], Field(description="Tag names or ids")] = []
    create_missing_tags: bool = False
    executions: Annotated[ExecutionsPart | None, Field(description="Fills")] = None
    screenshot: Annotated[
        ScreenshotPart | None,
        Field(description="Chart: path, data + filename, or latest"),
    ] = None
    checklist: Annotated[ChecklistPart | None, Field(description="As record_protocol_response")] = (
        None
    )
    allow_duplicate: bool = False  # the result says when (no description: its name does)

    def stored(self) -> dict[str, Any]:
        out = self.canonical()
        if self.screenshot is not None:
            out["screenshot"] = self.screenshot.without_bytes()
        return out

    def recorded(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        out = self.canonical()
        if self.screenshot is None:
            return out, {}
        out["screenshot"], blobs = self.screenshot.as_blob()
        return out, blobs

    def trade_digest(self) -> str:
        return digest_arguments(self.trade.canonical())


class TagTradeArgs(WriteArgs):
    KIND: ClassVar[WriteKind] = "sets"

    trade_number: TradeNumber
    tags: Annotated[list[str | int], Field(description="Tag names or ids")]
    mode: Literal["add", "remove", "replace"] = "add"
    create_missing: Annotated[bool, Field(description="Create unknown tag names")] = False
    category: Annotated[str | None, Field(description="Category for created tags")] = None

    def target(self) -> str:
        return f"trade:{self.trade_number}:tags"


class AttachScreenshotArgs(ScreenshotPart):
    trade_number: TradeNumber
    allow_duplicate: bool = False  # the result says when (no description: its name does)

    def stored(self) -> dict[str, Any]:
        return self.without_bytes()

    def recorded(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.as_blob()


class RecordProtocolResponseArgs(WriteArgs):
    protocol: Annotated[
        str | int, Field(description="Name, id or type (pre_trade, end_of_day, ...)")
    ]
    answers: Answers
    trade_number: Annotated[int | None, Field(ge=1, description="Link to this trade")] = None
    status: Literal["completed", "draft"] = "completed"
    allow_duplicate: bool = False  # the result says when (no description: its name does)


class TriggerSyncArgs(WriteArgs):
    KIND: ClassVar[WriteKind] = "sets"

    connection: Annotated[
        str | int | None,
        Field(description="Connection id, broker or account name; optional with one"),
    ] = None
    wait: Annotated[bool, Field(description="Wait out a cooldown (max 60 s), then sync")] = False


#: Fields a journaled trade keeps for good, and what to do instead of changing them.
_FIXED = dict.fromkeys(
    (
        "symbol",
        "direction",
        "net_pnl",
        "gross_pnl",
        "fees",
        "trade_date",
        "quantity",
        "multiplier",
        "account",
        "asset_type",
        "asset_config",
        "total_points",
        "rr_expected",
        "rr_realized",
        "holding_time",
    ),
    "cannot be changed once a trade is journaled: archive this trade (archive_trade) and "
    "journal it again with the right value",
) | {
    "tags": "are changed with tag_trade",
    "screenshot": "is added with attach_screenshot",
    "checklist": "is answered with record_protocol_response",
}


#: A field update_trade does not take: refused with what to do instead (`_FIXED`).
Fixed = SkipJsonSchema[Any]


class TradeChanges(TradeNotes):
    """update_trade's changes: the fields Tradavity lets a journaled trade change."""

    symbol: Fixed = None
    direction: Fixed = None
    net_pnl: Fixed = None
    gross_pnl: Fixed = None
    fees: Fixed = None
    trade_date: Fixed = None
    quantity: Fixed = None
    multiplier: Fixed = None
    account: Fixed = None
    asset_type: Fixed = None
    asset_config: Fixed = None
    total_points: Fixed = None
    rr_expected: Fixed = None
    rr_realized: Fixed = None
    holding_time: Fixed = None
    tags: Fixed = None
    screenshot: Fixed = None
    checklist: Fixed = None

    @field_validator(*_FIXED, mode="before")
    @classmethod
    def _fixed(cls, value: Any, info: ValidationInfo) -> Any:
        raise PydanticCustomError("strict_fixed_field", _FIXED[str(info.field_name)])

    def given(self) -> dict[str, Any]:
        """The changes as sent, explicit nulls kept (a null clears a stop)."""
        return self.model_dump(mode="json", exclude_unset=True)


class UpdateTradeArgs(WriteArgs):
    KIND: ClassVar[WriteKind] = "sets"

    trade_number: TradeNumber
    changes: Annotated[
        TradeChanges,
        Field(description="Only those to change; null clears sl_price/tp_price"),
    ]

    def canonical(self) -> dict[str, Any]:
        # `changes` keeps its nulls: null is how a stop is cleared.
        return {"trade_number": self.trade_number, "changes": self.changes.given()}

    def target(self) -> str:
        return f"trade:{self.trade_number}:fields"


class ArchiveTradeArgs(WriteArgs):
    KIND: ClassVar[WriteKind] = "sets"

    trade_number: TradeNumber
    including_copies: Annotated[
        bool, Field(description="Also archive its copies (only on a copy source)")
    ] = False

    def target(self) -> str:
        return f"trade:{self.trade_number}:archive"
