"""The calendar picture: a valid PNG whose day cells carry the colour of their P&L."""

from __future__ import annotations

import io
from datetime import date

from PIL import Image

from tradavity_mcp.server.calendar_png import EMPTY, FLAT, cell_box, day_colour, render_month

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
