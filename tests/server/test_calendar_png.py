"""The calendar picture: a valid PNG whose day cells carry the colour of their P&L, and
at most `MAX_MONTHS` months of it, drawn once at a size chosen by arithmetic."""

from __future__ import annotations

import io
import itertools
from datetime import date, timedelta

import pytest
from PIL import Image

from tradavity_mcp.server.calendar_png import (
    CELLS,
    EMPTY,
    FLAT,
    MAX_MONTHS,
    MAX_PERIODS,
    _money,
    cell_box,
    day_colour,
    estimate,
    fitting,
    not_drawn,
    panel_size,
    render_month,
    render_range,
    window,
)

DAYS = {
    date(2026, 11, 3): 420.5,
    date(2026, 11, 4): -180.0,
    date(2026, 11, 10): 1250.0,
    date(2026, 11, 11): 0.0,
    date(2026, 10, 30): 999.0,  # another month: not drawn
}


def _pixel(image: Image.Image, day: int) -> tuple[int, int, int]:
    left, top, right, bottom = cell_box(2026, 11, day)
    # Sample inside the cell, away from the day number and the amount.
    x, y = (left + right) // 2 + 20, (top + bottom) // 2 - 8
    r, g, b = image.getpixel((x, y))[:3]  # type: ignore[index]
    return r, g, b


def test_cells_match_the_data() -> None:
    png = render_month(2026, 11, DAYS, title="November 2026")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = 1250.0
    for day in range(1, 31):
        pnl = DAYS.get(date(2026, 11, day))
        assert _pixel(image, day) == day_colour(pnl, scale), day
    green, red = _pixel(image, 10), _pixel(image, 4)
    assert green[1] > green[0]
    assert red[0] > red[1]
    assert _pixel(image, 11) == FLAT
    assert _pixel(image, 20) == EMPTY


def test_stronger_days_are_darker() -> None:
    small, big = day_colour(100, 1000), day_colour(1000, 1000)
    assert sum(big) < sum(small)


# --- how much one picture draws ------------------------------------------------------------


def _every_day(first: date, last: date) -> dict[date, float]:
    """A trade every day, amounts with cents across the whole scale: the most a month's
    panel can hold (text in every cell, many shades)."""
    out, day, i = {}, first, 0
    while day <= last:
        out[day] = ((i * 7919) % 4001 - 2000) + (i % 100) / 100
        day += timedelta(days=1)
        i += 1
    return out


def test_each_cell_size_stays_within_its_estimate() -> None:
    """`fitting` picks the cell size by `estimate` alone, so each estimate must be an
    upper bound: for the most months each size is picked for, the PNG of a month traded
    every day is no larger than its estimate."""
    for cell, _ in CELLS:
        months = max(n for n in range(1, MAX_MONTHS + 1) if estimate(cell, n) <= BUDGET_BYTES)
        months = min(months, MAX_MONTHS)
        first = date(2024, 1, 1)
        last = _month_end(first, months)
        png, panels = render_range(first, last, _every_day(first, last), cell=cell)
        assert len(panels) == months
        assert len(png) <= estimate(cell, months), (cell, months, len(png))


#: The bytes a picture gets within the read-result budget once its words are counted.
BUDGET_BYTES = 21_000


def _month_end(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1) - timedelta(days=1)


def test_a_picture_is_drawn_once_at_the_largest_size_that_fits() -> None:
    drawn: list[int] = []
    for months, want in ((1, 96), (2, 48), (9, 28), (36, 18)):
        first = date(2024, 1, 1)
        last = _month_end(first, months)
        calls = 0

        def check() -> None:
            nonlocal calls
            calls += 1

        got = fitting(first, last, _every_day(first, last), max_bytes=BUDGET_BYTES, check=check)
        assert got is not None
        png, panels, cell = got
        assert cell == want, months
        assert len(png) <= BUDGET_BYTES
        assert calls == months + 1  # one drawing: a check before each month and the encoding
        width, height = Image.open(io.BytesIO(png)).size
        columns = 1 if cell >= 48 else min(months, 4)
        panel_w, panel_h = panel_size(cell)
        assert width == columns * panel_w
        if months > 1:
            assert height == -(-months // columns) * panel_h
        drawn.append(len(panels))
    assert drawn == [1, 2, 9, 36]


def test_a_check_that_raises_stops_the_drawing_between_months() -> None:
    class Stop(Exception):
        pass

    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Stop

    first, last = date(2024, 1, 1), date(2026, 12, 31)
    with pytest.raises(Stop):
        render_range(first, last, _every_day(first, last), cell=18, check=check)
    assert calls == 3


def test_no_picture_draws_more_than_the_bound() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_MONTHS} months; got 37"):
        render_range(date(2024, 1, 1), date(2027, 1, 31), {}, cell=12)


def test_the_window_is_the_latest_months_with_trades() -> None:
    traded = [date(2001, 3, 5), date(2026, 11, 20)]
    # Within the bound: the whole range, to the day.
    assert window(date(2024, 1, 15), date(2026, 12, 20), traded) == (
        date(2024, 1, 15),
        date(2026, 12, 20),
    )
    # Past it: 36 whole months ending with the last month that has a trade.
    assert window(date(2000, 1, 1), date(2026, 12, 31), traded) == (
        date(2023, 12, 1),
        date(2026, 11, 30),
    )
    # No trades: the range's last 36 months; trades only early: the first 36, to the day.
    assert window(date(2000, 1, 1), date(2100, 12, 31), []) == (
        date(2098, 1, 1),
        date(2100, 12, 31),
    )
    assert window(date(2000, 1, 10), date(2100, 12, 31), [date(2001, 3, 5)]) == (
        date(2000, 1, 10),
        date(2002, 12, 31),
    )
    # The calendar's last day is a valid end.
    assert window(date(1, 1, 1), date(9999, 12, 31), []) == (date(9997, 1, 1), date(9999, 12, 31))


def test_what_is_not_drawn_is_summed_by_year_and_covers_the_rest() -> None:
    days = {
        date(2001, 3, 5): 100.25,
        date(2001, 7, 1): -40.0,
        date(2010, 2, 2): 12.5,
        date(2023, 6, 1): 7.0,
        date(2024, 5, 5): 999.0,  # drawn
        date(2026, 12, 24): -3.0,  # after the picture
    }
    first, last = date(2000, 1, 1), date(2026, 12, 31)
    drawn = (date(2023, 12, 1), date(2026, 11, 30))
    periods = not_drawn(first, last, drawn, days)
    assert [(p.first, p.last, p.net_pnl, p.traded_days) for p in periods] == [
        (date(2000, 1, 1), date(2000, 12, 31), 0.0, 0),
        (date(2001, 1, 1), date(2001, 12, 31), 60.25, 2),
        (date(2002, 1, 1), date(2009, 12, 31), 0.0, 0),
        (date(2010, 1, 1), date(2010, 12, 31), 12.5, 1),
        (date(2011, 1, 1), date(2022, 12, 31), 0.0, 0),
        (date(2023, 1, 1), date(2023, 11, 30), 7.0, 1),
        (date(2026, 12, 1), date(2026, 12, 31), -3.0, 1),
    ]
    # A century of yearly trades: the oldest periods are summed into the first.
    yearly = {date(y, 6, 1): 1.0 for y in range(1950, 2050)}
    many = not_drawn(
        date(1900, 1, 1), date(2100, 12, 31), (date(2098, 1, 1), date(2100, 12, 31)), yearly
    )
    assert len(many) == MAX_PERIODS
    assert many[0].first == date(1900, 1, 1)
    assert sum(p.traded_days for p in many) == 100
    assert sum(p.net_pnl for p in many) == 100.0
    assert all(a.last + timedelta(days=1) == b.first for a, b in itertools.pairwise(many))
    assert many[-1].last == date(2097, 12, 31)


def test_amounts_keep_their_cents_and_never_read_minus_zero() -> None:
    """A week's total keeps its cents however large; a day's where its cell has room; a
    loss that rounds to nothing is "0.00", not "-0.00"."""
    assert _money(-12345.67, cents=True) == "-12,345.67"
    assert _money(1200.25, cents=True) == "+1,200.25"
    assert _money(1200.25) == "+1,200"
    assert _money(-0.004, cents=True) == "0.00"
    assert _money(0.0) == "0.00"
