"""The trader's clock: every time a person or a model reads, in the user's timezone.

Tradavity keeps and answers times in UTC (`2026-12-07T14:42:00Z`); a trader thinks in
the timezone of their Tradavity preferences (from `/me`). What we show goes through
here, so a 9:42 trade reads 9:42 wherever it appears:

* `LocalClock.text(moment)`: `2026-12-07 09:42 EST`, the local date and time marked
  with the zone's abbreviation, or with its UTC offset (`2026-12-07 22:42 +08:00`)
  where the tz database has no letters for it;
* `LocalClock.stamp(data)`: API data with `<key>_local` (that text) beside every UTC
  time `<key>`, for structured content; `readable(data)` keeps the local one alone,
  for the texts;
* `LocalClock.days(range)`: a range shortcut (`today`, `7d`, ...) as local dates;
* `LocalClock.trade_time(value)`: a trade time as given (local without an offset),
  in UTC, refused when it lies in the future.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UserError

__all__ = [
    "FUTURE_TOLERANCE_SECONDS",
    "MAX_YEAR",
    "MIN_YEAR",
    "LocalClock",
    "readable",
    "zone_named",
]

#: Trade dates outside these years are refused before any arithmetic on them.
MIN_YEAR, MAX_YEAR = 2000, 2100
#: A trade time this far ahead of our clock is still taken (clocks disagree a little).
FUTURE_TOLERANCE_SECONDS = 300.0

#: A UTC time as the API writes it (`2026-12-07T14:42:00Z`, fractions or `+00:00` too).
_UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|\+00:00)")
#: Keys whose values are times: `trade_date`, `created_at`, `execution_time`, ...
_TIME_KEY = re.compile(r"(.+_(at|date|time)|at|date|time|timestamp)")
_LETTERS = re.compile(r"[A-Za-z]{2,6}")


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _moment(value: Any) -> datetime | None:
    """A UTC time from the API (text), a Unix time, or an aware datetime; else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and _UTC_TIME.fullmatch(value.strip()):
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return None


@dataclass(frozen=True)
class LocalClock:
    """The user's timezone and the time now (Unix seconds, from the workspace's clock)."""

    zone: tzinfo
    #: The zone's IANA name, as the user set it in Tradavity.
    name: str
    at: float
    #: False when the user's timezone could not be read: times are shown in UTC,
    #: marked UTC, and `note` says so.
    known: bool = True

    @classmethod
    def utc(cls, at: float) -> LocalClock:
        """The stand-in when `/me` cannot be read: UTC, said to be UTC."""
        return cls(UTC, "UTC", at, known=False)

    # --- now -------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, self.zone)

    @property
    def today(self) -> date:
        return self.now.date()

    def now_fields(self) -> dict[str, Any]:
        """The user's date and time now, for `lookup me` and the like."""
        now = self.now
        out: dict[str, Any] = {
            "date": now.date().isoformat(),
            "weekday": f"{now:%A}",
            "time": f"{now:%H:%M}",
            "zone": self.label(now),
            "timezone": self.name,
            "utc_offset": _offset(now),
        }
        if not self.known:
            out["note"] = self.note
        return out

    @property
    def note(self) -> str:
        return "the user's Tradavity timezone could not be read just now, so these times are in UTC"

    # --- showing a time --------------------------------------------------------------

    def local(self, value: Any) -> datetime | None:
        """`value` (a UTC time from the API, a Unix time, a datetime) in the user's zone."""
        moment = _moment(value)
        return moment.astimezone(self.zone) if moment is not None else None

    def label(self, moment: datetime) -> str:
        """`EST`, `CET`, `UTC`; the offset (`+08:00`) where the zone has no letters."""
        local = moment.astimezone(self.zone)
        name = local.tzname() or ""
        return name if _LETTERS.fullmatch(name) else _offset(local)

    def text(self, value: Any) -> str:
        """`2026-12-07 09:42 EST`; a value that is not a time is returned as text."""
        local = self.local(value)
        if local is None:
            return str(value)
        return f"{local:%Y-%m-%d %H:%M} {self.label(local)}"

    def day_text(self, value: Any) -> str:
        """`Monday 2026-12-07 19:40 EST`: a moment with its weekday."""
        local = self.local(value)
        return f"{local:%A} {self.text(local)}" if local is not None else str(value)

    def stamp(self, data: Any) -> Any:
        """A copy of API data with `<key>_local` right after every UTC time `<key>`."""
        if isinstance(data, list):
            return [self.stamp(v) for v in data]
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key] = self.stamp(value)
            if (
                isinstance(key, str)
                and isinstance(value, str)
                and _TIME_KEY.fullmatch(key)
                and _UTC_TIME.fullmatch(value.strip())
            ):
                out[f"{key}_local"] = self.text(value)
        return out

    # --- days ------------------------------------------------------------------------

    def days(self, range_: str) -> tuple[date | None, date | None]:
        """A range shortcut as (first, last) local dates, both included; `all`: none."""
        today = self.today
        spans: dict[str, tuple[date | None, date | None]] = {
            "today": (today, today),
            "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
            "7d": (today - timedelta(days=6), today),
            "30d": (today - timedelta(days=29), today),
            "90d": (today - timedelta(days=89), today),
            "mtd": (today.replace(day=1), today),
            "ytd": (today.replace(month=1, day=1), today),
            "all": (None, None),
        }
        return spans[range_]

    # --- reading a trade time --------------------------------------------------------

    def trade_time(self, value: str, *, field_name: str = "trade_date") -> datetime:
        """A trade time in UTC: ISO 8601 with an offset, or local to the user's zone
        (`2026-11-20T09:31` is 9:31 there; a bare date the start of that day); `now` is
        now. A time in the future (past `FUTURE_TOLERANCE_SECONDS`) is refused, naming
        both times and, when it is most likely a day off, the day meant."""
        text = value.strip()
        if text.casefold() == "now":
            return datetime.fromtimestamp(self.at, UTC)
        example = (
            "use ISO 8601, e.g. 2026-11-20T09:31 (your Tradavity timezone), "
            "2026-11-20T14:31Z, or 'now'"
        )
        try:
            if len(text) == 10:
                parsed = datetime.combine(date.fromisoformat(text), dtime(0, 0))
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            raise UserError(f"{field_name} {value!r} is not a date/time: {example}") from None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            raise UserError(
                f"{field_name} {value!r} is out of range: Tradavity takes dates from "
                f"{MIN_YEAR} to tomorrow; {example}"
            )
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone)
        moment = parsed.astimezone(UTC)
        if moment.timestamp() > self.at + FUTURE_TOLERANCE_SECONDS:
            raise UserError(self._future(value, moment, field_name))
        return moment

    def _future(self, value: str, moment: datetime, field_name: str) -> str:
        now = self.now
        given = moment.astimezone(self.zone)
        words = [
            f"{field_name} {value!r} is in the future: that is {self.text(given)}, and it "
            f"is now {self.text(now)} for the user. A trade is journaled after it happened."
        ]
        # Tomorrow's date, most likely taken from UTC on an evening in the Americas:
        # the same time today, if that has passed.
        same_today = datetime.combine(now.date(), given.time(), self.zone)
        if (
            given.date() == now.date() + timedelta(days=1)
            and same_today.timestamp() <= self.at + FUTURE_TOLERANCE_SECONDS
        ):
            words.append(f"Did you mean {self.text(same_today)} (today)?")
        utc_day = datetime.fromtimestamp(self.at, UTC).date()
        if utc_day != now.date():
            still = "already" if utc_day > now.date() else "still"
            words.append(
                f"The user's today is {now:%A} {now.date().isoformat()} ({self.name}), "
                f"though the UTC date is {still} {utc_day.isoformat()}: dates and times "
                "without an offset are the user's own."
            )
        words.append("Nothing was written.")
        return " ".join(words)


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def readable(data: Any) -> Any:
    """What a text shows of stamped data: each time in its local form alone (`<key>`
    gives way to `<key>_local`, in its place)."""
    if isinstance(data, list):
        return [readable(v) for v in data]
    if not isinstance(data, dict):
        return data
    return {
        key: readable(value)
        for key, value in data.items()
        if not (isinstance(key, str) and f"{key}_local" in data)
    }
