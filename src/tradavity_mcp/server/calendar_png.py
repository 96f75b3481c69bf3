"""The P&L calendar as a picture: one month, green and red by day, totals per week.

Layout is a plain grid (weeks are rows, Monday first, a weekly total column at the
right), exposed through `cell_box` so tests can check each day's colour against the
numbers it was drawn from.

The PNG is saved with a 256-colour palette that holds every fill exactly (the rest of
it goes to the text's anti-aliasing): a third of the size of full colour, so the picture
and its caption stay well within the read-result budget.
"""

from __future__ import annotations

import calendar as _cal
import io
from collections.abc import Mapping
from datetime import date

from PIL import Image, ImageDraw, ImageFont

__all__ = ["CELL", "HEADER", "cell_box", "day_colour", "render_month"]

CELL = 96  # px, square day cells
HEADER = 64  # px, title + weekday names
WEEK_COL = 120  # px, the weekly total column
PAD = 8

BACKGROUND = (255, 255, 255)
EMPTY = (243, 244, 246)  # a day without trades
OUTSIDE = (255, 255, 255)  # a cell outside the month
INK = (17, 24, 39)
MUTED = (107, 114, 128)
GREEN = (22, 163, 74)
RED = (220, 38, 38)
FLAT = (156, 163, 175)


#: Shades of green and of red: few enough to stay apart on the PNG's palette.
SHADES = 10


def _blend(colour: tuple[int, int, int], strength: float) -> tuple[int, int, int]:
    """Mix `colour` into white: `strength` 0..1 (light to full), in `SHADES` steps."""
    step = round(max(0.0, min(1.0, strength)) * (SHADES - 1)) / (SHADES - 1)
    s = 0.35 + 0.65 * step
    return tuple(round(255 + (c - 255) * s) for c in colour)  # type: ignore[return-value]


def day_colour(pnl: float | None, scale: float) -> tuple[int, int, int]:
    """The fill of a day cell: green for a profit, red for a loss, grey when flat."""
    if pnl is None:
        return EMPTY
    if pnl == 0 or scale <= 0:
        return FLAT
    return _blend(GREEN if pnl > 0 else RED, abs(pnl) / scale)


def cell_box(year: int, month: int, day: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a day's cell in the image."""
    weeks = _cal.Calendar(firstweekday=0).monthdayscalendar(year, month)
    for row, week in enumerate(weeks):
        if day in week:
            col = week.index(day)
            left = PAD + col * CELL
            top = HEADER + row * CELL
            return left, top, left + CELL - 2, top + CELL - 2
    raise ValueError(f"{year}-{month:02d} has no day {day}")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render_month(year: int, month: int, pnl_by_day: Mapping[date, float], *, title: str) -> bytes:
    """A PNG of the month's daily P&L."""
    weeks = _cal.Calendar(firstweekday=0).monthdayscalendar(year, month)
    width = PAD * 2 + CELL * 7 + WEEK_COL
    height = HEADER + CELL * len(weeks) + PAD
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    days = {d.day: v for d, v in pnl_by_day.items() if (d.year, d.month) == (year, month)}
    scale = max((abs(v) for v in days.values()), default=0.0)

    draw.text((PAD, 6), title, fill=INK, font=_font(22))
    for col, name in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Week")):
        draw.text((PAD + col * CELL + 4, 40), name, fill=MUTED, font=_font(14))

    for row, week in enumerate(weeks):
        week_total = 0.0
        traded = False
        for col, day in enumerate(week):
            left, top = PAD + col * CELL, HEADER + row * CELL
            box = (left, top, left + CELL - 2, top + CELL - 2)
            if day == 0:
                draw.rectangle(box, fill=OUTSIDE)
                continue
            pnl = days.get(day)
            fill = day_colour(pnl, scale)
            draw.rectangle(box, fill=fill)
            strong = fill not in (EMPTY, FLAT) and sum(fill) < 420
            ink = (255, 255, 255) if strong else INK
            draw.text((left + 6, top + 4), str(day), fill=ink, font=_font(14))
            if pnl is not None:
                week_total += pnl
                traded = True
                draw.text((left + 6, top + CELL - 30), _money(pnl), fill=ink, font=_font(15))
        if traded:
            left, top = PAD + 7 * CELL + 6, HEADER + row * CELL
            colour = GREEN if week_total > 0 else RED if week_total < 0 else MUTED
            draw.text((left, top + CELL // 2 - 10), _money(week_total), fill=colour, font=_font(16))

    out = io.BytesIO()
    fills = {BACKGROUND, EMPTY, OUTSIDE, INK, MUTED, GREEN, RED, FLAT, (255, 255, 255)}
    fills |= {day_colour(v, scale) for v in days.values()}
    _paletted(image, fills).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _paletted(image: Image.Image, exact: set[tuple[int, int, int]]) -> Image.Image:
    """`image` on a palette: the `exact` colours as they are, the others to the nearest of
    the colours that best cover the rest of the image. Pillow maps colours to a palette
    at reduced precision, so no covering colour is kept near an exact one."""
    cover = image.quantize(colors=256 - len(exact), method=Image.Quantize.MEDIANCUT)
    raw = cover.getpalette() or []
    colours = list(exact)
    for i in range(0, min(len(raw), 3 * (256 - len(exact))), 3):
        colour = (raw[i], raw[i + 1], raw[i + 2])
        if all(max(abs(a - b) for a, b in zip(colour, e, strict=True)) > 8 for e in exact):
            colours.append(colour)
    palette = Image.new("P", (1, 1))
    palette.putpalette([c for colour in colours[:256] for c in colour])
    return image.quantize(palette=palette, dither=Image.Dither.NONE)


def _money(value: float) -> str:
    sign = "+" if value > 0 else "-" if value < 0 else ""
    return f"{sign}{abs(value):,.0f}" if abs(value) >= 1000 else f"{sign}{abs(value):,.2f}"
