"""The trader's clock (`server.when`): how times are shown, what a range's days are, and
which trade times are taken."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tradavity_mcp.server.errors import UserError
from tradavity_mcp.server.when import FUTURE_TOLERANCE_SECONDS, LocalClock, readable

#: 19:40 on Monday 2026-12-07 in New York (UTC: Tuesday 00:40).
AT = datetime(2026, 12, 8, 0, 40, tzinfo=UTC).timestamp()


def _clock(zone: str, at: float = AT) -> LocalClock:
    return LocalClock(ZoneInfo(zone), zone, at)


NEW_YORK = _clock("America/New_York")
SINGAPORE = _clock("Asia/Singapore")


def test_a_time_is_shown_in_the_users_zone_and_marked() -> None:
    assert NEW_YORK.text("2026-12-07T14:42:00Z") == "2026-12-07 09:42 EST"
    # Summer time has its own letters; a zone without letters shows its offset.
    assert NEW_YORK.text("2026-07-07T13:42:00Z") == "2026-07-07 09:42 EDT"
    assert SINGAPORE.text("2026-12-07T01:42:00Z") == "2026-12-07 09:42 +08:00"
    assert _clock("Asia/Kolkata").text("2026-12-07T04:12:00Z") == "2026-12-07 09:42 IST"
    assert _clock("America/St_Johns").text("2026-12-07T13:12:00Z") == "2026-12-07 09:42 NST"
    assert _clock("Asia/Kathmandu").text("2026-12-07T03:57:00Z") == "2026-12-07 09:42 +05:45"
    # Unix times and `+00:00` are the same moments; anything else is left as it is.
    assert NEW_YORK.text(AT) == "2026-12-07 19:40 EST"
    assert NEW_YORK.text("2026-12-07T14:42:00.250+00:00") == "2026-12-07 09:42 EST"
    assert NEW_YORK.text("2026-12-07") == "2026-12-07"
    # When the user's zone is unknown, the time is UTC and says so.
    assert LocalClock.utc(AT).text("2026-12-07T14:42:00Z") == "2026-12-07 14:42 UTC"


def test_now_is_the_users_date_and_time() -> None:
    assert NEW_YORK.today.isoformat() == "2026-12-07"
    assert NEW_YORK.now_fields() == {
        "date": "2026-12-07",
        "weekday": "Monday",
        "time": "19:40",
        "zone": "EST",
        "timezone": "America/New_York",
        "utc_offset": "-05:00",
    }
    assert SINGAPORE.now_fields()["date"] == "2026-12-08"
    assert "could not be read" in LocalClock.utc(AT).now_fields()["note"]


def test_stamped_data_keeps_utc_beside_local_and_texts_show_local_alone() -> None:
    data = {
        "trade_date": "2026-12-07T14:42:00Z",
        "general_notes": "2026-12-07T14:42:00Z",  # words, not a time field: left alone
        "executions": [{"execution_time": "2026-12-07T14:43:10Z", "price": 1.5}],
        "expiration_date": "2026-12-18",  # a date is already the user's day
        "created_at": None,
    }
    stamped = NEW_YORK.stamp(data)
    assert list(stamped)[:2] == ["trade_date", "trade_date_local"]
    assert stamped["trade_date"] == "2026-12-07T14:42:00Z"
    assert stamped["trade_date_local"] == "2026-12-07 09:42 EST"
    assert stamped["executions"][0]["execution_time_local"] == "2026-12-07 09:43 EST"
    assert "general_notes_local" not in stamped
    assert "expiration_date_local" not in stamped
    shown = readable(stamped)
    assert next(iter(shown)) == "trade_date_local"
    assert "trade_date" not in shown
    assert shown["executions"] == [{"execution_time_local": "2026-12-07 09:43 EST", "price": 1.5}]
    assert shown["general_notes"] == "2026-12-07T14:42:00Z"


def test_range_shortcuts_are_the_users_days() -> None:
    days = {name: NEW_YORK.days(name) for name in ("today", "yesterday", "7d", "30d", "mtd")}
    assert {k: (str(a), str(b)) for k, (a, b) in days.items()} == {
        "today": ("2026-12-07", "2026-12-07"),
        "yesterday": ("2026-12-06", "2026-12-06"),
        "7d": ("2026-12-01", "2026-12-07"),
        "30d": ("2026-11-08", "2026-12-07"),
        "mtd": ("2026-12-01", "2026-12-07"),
    }
    assert SINGAPORE.days("today")[0] is not None
    assert str(SINGAPORE.days("today")[0]) == "2026-12-08"
    assert NEW_YORK.days("all") == (None, None)


def test_a_trade_time_is_read_in_the_users_zone() -> None:
    def utc(value: str, clock: LocalClock = NEW_YORK) -> str:
        return clock.trade_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert utc("2026-12-07T09:42") == "2026-12-07T14:42:00Z"
    assert utc("2026-12-07 09:42") == "2026-12-07T14:42:00Z"
    assert utc("2026-12-07T09:42", SINGAPORE) == "2026-12-07T01:42:00Z"
    assert utc("2026-12-07T14:42Z") == "2026-12-07T14:42:00Z"
    assert utc("2026-12-07T09:42-05:00") == "2026-12-07T14:42:00Z"
    assert utc("2026-12-07") == "2026-12-07T05:00:00Z"  # the start of the user's day
    assert utc("now") == "2026-12-08T00:40:00Z"
    with pytest.raises(UserError, match="is not a date/time"):
        utc("next tuesday")
    with pytest.raises(UserError, match="is out of range"):
        utc("1999-12-31T10:00")


def test_a_trade_time_in_the_future_is_refused_past_a_small_tolerance() -> None:
    ahead = FUTURE_TOLERANCE_SECONDS
    taken = NEW_YORK.trade_time(datetime.fromtimestamp(AT + ahead - 1, UTC).isoformat())
    assert taken.timestamp() == pytest.approx(AT + ahead - 1)
    with pytest.raises(UserError, match="is in the future"):
        NEW_YORK.trade_time(datetime.fromtimestamp(AT + ahead + 60, UTC).isoformat())
    with pytest.raises(UserError) as tomorrow:
        NEW_YORK.trade_time("2026-12-08T09:31")
    assert str(tomorrow.value) == (
        "trade_date '2026-12-08T09:31' is in the future: that is 2026-12-08 09:31 EST, and it "
        "is now 2026-12-07 19:40 EST for the user. A trade is journaled after it happened. "
        "Did you mean 2026-12-07 09:31 EST (today)? The user's today is Monday 2026-12-07 "
        "(America/New_York), though the UTC date is already 2026-12-08: dates and times "
        "without an offset are the user's own. Nothing was written."
    )
    # Two days ahead, or a time of tomorrow that has not come today either: no guess.
    for value in ("2026-12-09T09:31", "2026-12-08T21:00"):
        with pytest.raises(UserError) as refused:
            NEW_YORK.trade_time(value)
        assert "Did you mean" not in str(refused.value)
