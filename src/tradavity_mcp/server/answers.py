"""Protocol answers: keyed by item label or id, checked per item type before sending.

The API wants `item_values` keyed by item id with type-specific strings. People answer
"conviction 4, news no, charts loaded yes". Each answer is matched to its item
(case-insensitive label, or id) and coerced to the API's form; every problem is
reported at once, naming the item and what it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic_core import PydanticCustomError

from ..api.models import MAX_NUMBER, Protocol, ProtocolItem, check_text
from .errors import UserError
from .refdata import close_matches, one_of

__all__ = ["ALL_YES_KEY", "STAR_TYPES", "answer_values", "build_item_values", "to_answer"]

#: An answer under this key fills every checkbox and yes/no item not answered otherwise
#: ("the checklist was all yes").
ALL_YES_KEY = "*"
#: The item types `*` answers; a select, rating, number or text item needs its own answer.
STAR_TYPES = frozenset({"checkbox", "yes_no_na"})

_TRUE = {"1", "true", "yes", "y", "checked", "done", "x", "on"}
_FALSE = {"0", "false", "no", "n", "unchecked", "off", ""}
_NA = {"na", "n/a", "n.a.", "not applicable", "none"}
#: Most decimal places a number answer keeps (the API's own decimals go to 8).
_MAX_PLACES = 8


def _clean(text: str) -> str:
    try:
        return check_text(text)
    except PydanticCustomError as exc:
        raise ValueError(exc.message()) from None


def _coerce(item: ProtocolItem, value: Any) -> str | int:
    """The API form of one answer, or ValueError saying what the item accepts."""
    kind = item.item_type
    text = str(value).strip().casefold() if not isinstance(value, bool) else ""
    if kind == "checkbox":
        if value is True or text in _TRUE:
            return "1"
        if value is False or text in _FALSE:
            return "0"
        raise ValueError("accepts true/false (checked or not)")
    if kind == "yes_no_na":
        if value is True or text in {"yes", "y", "true", "1"}:
            return "yes"
        if value is False or text in {"no", "n", "false", "0"}:
            return "no"
        if text in _NA:
            return "na"
        raise ValueError("accepts 'yes', 'no' or 'na'")
    if kind == "rating":
        try:
            number = Decimal(str(value).strip()) if not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or number != number.to_integral_value() or not 1 <= number <= 5:
            raise ValueError("accepts a whole number from 1 to 5")
        return int(number)
    if kind == "number":
        try:
            number = Decimal(str(value).strip()) if not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ValueError("accepts a number, e.g. 1.5")
        if abs(number) >= MAX_NUMBER:
            raise ValueError("accepts a number below 1,000,000,000,000,000 in size")
        if number == 0:
            return "0"
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -_MAX_PLACES:
            raise ValueError(f"accepts a number with at most {_MAX_PLACES} decimal places")
        return format(number.normalize(), "f")
    if kind == "select":
        options = item.options or []
        for option in options:
            if option.casefold() == str(value).strip().casefold():
                return option
        raise ValueError(f"accepts one of {one_of(options)}")
    if kind == "text":
        if isinstance(value, dict | list | bool) or value is None:
            raise ValueError("accepts text")
        return _clean(str(value))
    raise ValueError(f"has an item type this server does not know ({kind})")


def answer_values(
    protocol: Protocol,
    answers: Mapping[str, Any],
    *,
    kept: Mapping[str, str | int] | None = None,
) -> tuple[dict[str, str | int], list[ProtocolItem]]:
    """The item values `answers` give on top of `kept` (a response's earlier values), and
    the required items still without one. One `UserError` lists every bad answer.

    `*` fills the checkbox and yes/no items answered neither here nor in `kept`: a later
    "all yes" never overwrites an explicit earlier "no".
    """
    items = protocol.items
    by_id = {str(i.item_id): i for i in items}
    by_label = {i.label.strip().casefold(): i for i in items}
    values: dict[str, str | int] = {}
    problems: list[str] = []
    fill_all = answers.get(ALL_YES_KEY)

    for key, value in answers.items():
        if key == ALL_YES_KEY:
            continue
        ref = str(key).strip()
        item = by_id.get(ref) or by_label.get(ref.casefold())
        if item is None:
            near = close_matches(ref, [i.label for i in items])
            hint = f" (did you mean {one_of(near)}?)" if near else ""
            problems.append(f"no item {ref!r} in '{protocol.name}'{hint}")
            continue
        if value is None:
            continue
        try:
            values[str(item.item_id)] = _coerce(item, value)
        except ValueError as exc:
            problems.append(f"'{item.label}' ({item.item_type}) {exc}; got {value!r}")

    earlier = {k: v for k, v in (kept or {}).items() if k in by_id}
    if fill_all is not None:
        for item in items:
            key = str(item.item_id)
            if item.item_type in STAR_TYPES and key not in values and key not in earlier:
                try:
                    values[key] = _coerce(item, fill_all)
                except ValueError as exc:
                    problems.append(f"'*' for '{item.label}' ({item.item_type}) {exc}")
    if problems:
        labels = "; ".join(f"'{i.label}' ({_accepts(i)})" for i in items)
        raise UserError(
            "checklist answers need fixing: " + "; ".join(problems) + f". Items: {labels}"
        )
    merged = {**earlier, **values}
    missing = [i for i in items if i.required and str(i.item_id) not in merged]
    return merged, missing


def build_item_values(
    protocol: Protocol, answers: Mapping[str, Any], *, completed: bool
) -> dict[str, str | int]:
    """Map answers onto the protocol's items; raise one `UserError` listing every problem
    (for a completed response, also every required item left unanswered)."""
    values, missing = answer_values(protocol, answers)
    if completed and missing:
        listed = ", ".join(f"'{i.label}' ({i.item_type})" for i in missing)
        labels = "; ".join(f"'{i.label}' ({_accepts(i)})" for i in protocol.items)
        raise UserError(
            "checklist answers need fixing: a completed response needs every required item; "
            f"missing: {listed} (or pass status='draft'). Items: {labels}"
        )
    return values


def to_answer(items: Sequence[ProtocolItem]) -> list[str]:
    """What each item takes, in words a trader can be asked in:
    ["Bias: long, short or neutral", "Conviction: 1-5"]."""
    return [f"{i.label}: {_takes(i)}" for i in items]


def _takes(item: ProtocolItem) -> str:
    if item.item_type == "select":
        options = list(item.options or [])
        if len(options) > 1:
            return ", ".join(options[:-1]) + " or " + options[-1]
        return options[0] if options else "one of its options"
    return _TAKES.get(item.item_type, item.item_type)


#: What an item of each type takes, said to the trader (select: its options).
_TAKES = {
    "checkbox": "yes or no (done or not)",
    "yes_no_na": "yes, no or na",
    "rating": "1-5",
    "number": "a number",
    "text": "a few words",
}


def _accepts(item: ProtocolItem) -> str:
    return {
        "checkbox": "true/false",
        "yes_no_na": "yes/no/na",
        "rating": "1-5",
        "number": "number",
        "text": "text",
        "select": "/".join(item.options or []),
    }.get(item.item_type, item.item_type) + (", required" if item.required else "")
