"""The P&L calendar as a picture: the months of a range, green and red by day, totals
per week, on one colour scale.

Each month is a panel: a plain grid (weeks are rows, Monday first, a weekly total column
at the right); days outside the range are left blank. `render_range` reports the panels
it drew (label, net P&L, position) and `cell_box` where each day is, so tests can check
each day's colour against the numbers it was drawn from. Long ranges draw smaller cells
(`cell`), without amounts, so the picture stays within the result budget.

A picture holds at most `MAX_MONTHS` months (`window` picks them: those ending with the
range's last month with trades); the caller sums the rest by year (`not_drawn`). `fitting`
draws it once, at the largest cell size whose estimated PNG (`estimate`, measured on
months traded every day) fits the bytes it may take, and smaller only when the estimate
was short. Drawing checks a deadline (`check`) between months and before encoding, so
work that runs past its time is stopped within one month's drawing.

The PNG is saved with a 256-colour palette that holds every fill exactly (the rest of
it goes to the text's anti-aliasing): a third of the size of full colour, so the picture
and its caption stay well within the read-result budget.
"""

from __future__ import annotations

import calendar as _cal
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "CELL",
    "CELLS",
    "HEADER",
    "MAX_MONTHS",
    "MAX_PERIODS",
    "Panel",
    "Period",
    "cell_box",
    "day_colour",
    "estimate",
    "fitting",
    "month_count",
    "month_totals",
    "not_drawn",
    "panel_size",
    "render_month",
    "render_range",
    "window",
]

CELL = 96  # px, square day cells
HEADER = 64  # px, title + weekday names
WEEK_COL = 120  # px, the weekly total column
PAD = 8

#: The most months one picture draws (three years, 36 panels in four columns); the
#: rest of a longer range is summarised in words by the caller.
MAX_MONTHS = 36
#: Cell sizes (px), largest first, with the PNG bytes each drawn month adds at most
#: (measured on months with a trade every day, amounts at the scale's extremes).
CELLS: tuple[tuple[int, int], ...] = ((96, 16_200), (48, 6_800), (28, 1_650), (18, 460), (12, 385))
#: PNG bytes of any picture beyond its months: headers and the 256-colour palette.
PNG_OVERHEAD = 900

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


def cell_box(
    year: int, month: int, day: int, *, cell: int = CELL, origin: tuple[int, int] = (0, 0)
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a day's cell in a month panel at `origin`."""
    weeks = _cal.Calendar(firstweekday=0).monthdayscalendar(year, month)
    header = _header(cell)
    for row, week in enumerate(weeks):
        if day in week:
            left = origin[0] + PAD + week.index(day) * cell
            top = origin[1] + header + row * cell
            return left, top, left + cell - 2, top + cell - 2
    raise ValueError(f"{year}-{month:02d} has no day {day}")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _header(cell: int) -> int:
    return HEADER * cell // CELL


def panel_size(cell: int) -> tuple[int, int]:
    """A month panel's (width, height): six week rows at most."""
    return PAD * 2 + cell * 7 + WEEK_COL * cell // CELL, _header(cell) + cell * 6 + PAD


@dataclass(frozen=True)
class Panel:
    """One month as drawn: its label, the net P&L of its days inside the range, and
    where it stands in the picture."""

    year: int
    month: int
    label: str
    net_pnl: float
    origin: tuple[int, int]


def render_month(year: int, month: int, pnl_by_day: Mapping[date, float], *, title: str) -> bytes:
    """A PNG of one month's daily P&L (every day of it in range)."""
    first, last = date(year, month, 1), date(year, month, _cal.monthrange(year, month)[1])
    png, _ = render_range(first, last, pnl_by_day, titles={(year, month): title})
    return png


def render_range(
    first: date,
    last: date,
    pnl_by_day: Mapping[date, float],
    *,
    cell: int = CELL,
    titles: Mapping[tuple[int, int], str] | None = None,
    check: Callable[[], None] | None = None,
) -> tuple[bytes, list[Panel]]:
    """A PNG of every month from `first` to `last` (`MAX_MONTHS` at most), one panel
    each (days outside the range left blank), on one colour scale; and the panels as
    drawn. `check` is called before each month and before encoding (it raises to stop)."""
    months = _months(first, last)
    if len(months) > MAX_MONTHS:
        raise ValueError(f"a picture draws at most {MAX_MONTHS} months; got {len(months)}")
    columns = 1 if cell >= CELL // 2 else min(len(months), 4)
    width, height = panel_size(cell)
    rows = -(-len(months) // columns)
    if len(months) == 1:
        height = _header(cell) + cell * len(_weeks(*months[0])) + PAD
    image = Image.new("RGB", (width * columns, height * rows), BACKGROUND)
    draw = ImageDraw.Draw(image)
    days = {d: v for d, v in pnl_by_day.items() if first <= d <= last}
    scale = max((abs(v) for v in days.values()), default=0.0)
    totals = month_totals(first, last, days)
    panels: list[Panel] = []
    for i, (year, month) in enumerate(months):
        if check is not None:
            check()
        origin = ((i % columns) * width, (i // columns) * height)
        total = totals[year, month]
        label = f"{date(year, month, 1):%B %Y}"
        title = (titles or {}).get((year, month), f"{label}  net {total:+,.2f}")
        _draw_month(draw, origin, year, month, days, scale, cell, first, last, title)
        panels.append(Panel(year, month, label, total, origin))
    if check is not None:
        check()
    out = io.BytesIO()
    fills = {BACKGROUND, EMPTY, OUTSIDE, INK, MUTED, GREEN, RED, FLAT, (255, 255, 255)}
    fills |= {day_colour(v, scale) for v in days.values()}
    _paletted(image, fills).save(out, format="PNG", optimize=True)
    return out.getvalue(), panels


def month_totals(
    first: date, last: date, pnl_by_day: Mapping[date, float]
) -> dict[tuple[int, int], float]:
    """The net P&L of each month from `first`'s to `last`'s (days outside the range
    left out), in order, rounded to cents."""
    totals = dict.fromkeys(_months(first, last), 0.0)
    for day, value in pnl_by_day.items():
        if first <= day <= last:
            totals[day.year, day.month] += value
    return {month: round(total, 2) for month, total in totals.items()}


def month_count(first: date, last: date) -> int:
    """Calendar months from `first`'s to `last`'s, both counted."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def estimate(cell: int, months: int) -> int:
    """The most PNG bytes `months` panels at `cell` px should take (see `CELLS`)."""
    per_month = dict(CELLS)[cell]
    return PNG_OVERHEAD + per_month * months


def fitting(
    first: date,
    last: date,
    pnl_by_day: Mapping[date, float],
    *,
    max_bytes: int,
    check: Callable[[], None] | None = None,
) -> tuple[bytes, list[Panel], int] | None:
    """`render_range` at the largest cell size whose `estimate` fits `max_bytes` (one
    drawing as a rule; the next size down only if the PNG came out larger), with the
    cell size used; None if even the smallest cells do not fit."""
    months = month_count(first, last)
    sizes = [cell for cell, _ in CELLS]
    start = next((i for i, cell in enumerate(sizes) if estimate(cell, months) <= max_bytes), None)
    if start is None:
        start = len(sizes) - 1  # the estimate is an upper bound: the smallest may still fit
    for cell in sizes[start:]:
        png, panels = render_range(first, last, pnl_by_day, cell=cell, check=check)
        if len(png) <= max_bytes:
            return png, panels, cell
    return None


def window(first: date, last: date, traded: Iterable[date]) -> tuple[date, date]:
    """The part of `first`..`last` a picture draws: all of it when it spans at most
    `MAX_MONTHS` months; else `MAX_MONTHS` whole months (cut to the range) ending with the
    range's last month that has a trade (its last month, when none has)."""
    if month_count(first, last) <= MAX_MONTHS:
        return first, last
    latest = max((d for d in traded if first <= d <= last), default=last)
    end = _month_index(latest)
    start = max(end - MAX_MONTHS + 1, _month_index(first))
    end = start + MAX_MONTHS - 1
    drawn_first = max(first, _month_start(start))
    end_month = _month_start(end)
    month_end = end_month.replace(day=_cal.monthrange(end_month.year, end_month.month)[1])
    return drawn_first, min(last, month_end)


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """Days of a range left out of the picture: their net P&L and traded days."""

    first: date
    last: date
    net_pnl: float
    traded_days: int


#: The most `Period`s `not_drawn` gives; older ones are summed into the first.
MAX_PERIODS = 24


def not_drawn(
    first: date, last: date, drawn: tuple[date, date], pnl_by_day: Mapping[date, float]
) -> list[Period]:
    """What `first`..`last` holds outside `drawn`, in time order: one period per calendar
    year with trades (the part of it outside the picture), and one for each run of
    years without any between them. At most `MAX_PERIODS` (older ones summed into one).
    The work follows the traded days, not the range's length."""
    segments = []
    if first < drawn[0]:
        segments.append((first, drawn[0] - timedelta(days=1)))
    if drawn[1] < last:
        segments.append((drawn[1] + timedelta(days=1), last))
    periods: list[Period] = []
    for seg_first, seg_last in segments:
        by_year: dict[int, list[float]] = {}
        for day, value in pnl_by_day.items():
            if seg_first <= day <= seg_last:
                by_year.setdefault(day.year, []).append(value)
        cursor: date | None = seg_first  # the first day not yet in a period
        for year in sorted(by_year):
            assert cursor is not None
            if cursor < date(year, 1, 1):
                periods.append(Period(cursor, date(year - 1, 12, 31), 0.0, 0))
            values = by_year[year]
            end = min(seg_last, date(year, 12, 31))
            periods.append(Period(max(cursor, date(year, 1, 1)), end, sum(values), len(values)))
            cursor = end + timedelta(days=1) if end < seg_last else None
        if cursor is not None:
            periods.append(Period(cursor, seg_last, 0.0, 0))
    if len(periods) > MAX_PERIODS:
        older = periods[: len(periods) - MAX_PERIODS + 1]
        folded = Period(
            older[0].first,
            older[-1].last,
            sum(p.net_pnl for p in older),
            sum(p.traded_days for p in older),
        )
        periods = [folded, *periods[len(older) :]]
    return [Period(p.first, p.last, round(p.net_pnl, 2), p.traded_days) for p in periods]


def _months(first: date, last: date) -> list[tuple[int, int]]:
    out, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _weeks(year: int, month: int) -> list[list[int]]:
    return _cal.Calendar(firstweekday=0).monthdayscalendar(year, month)


def _draw_month(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    year: int,
    month: int,
    days: Mapping[date, float],
    scale: float,
    cell: int,
    first: date,
    last: date,
    title: str,
) -> None:
    """One month's panel: title, weekday names, a cell per day, a total per week."""
    x0, y0 = origin
    small = cell < CELL // 2  # too small for amounts: colours and day numbers only
    tiny = cell < CELL // 4  # too small for any number: colours and the month's title
    draw.text(
        (x0 + PAD, y0 + 6 * cell // CELL), title, fill=INK, font=_font(max(10, 22 * cell // CELL))
    )
    names = () if tiny else ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Week")
    for col, name in enumerate(names):
        draw.text(
            (x0 + PAD + col * cell + 4 * cell // CELL, y0 + 40 * cell // CELL),
            name if not small else name[0],
            fill=MUTED,
            font=_font(max(8, 14 * cell // CELL)),
        )
    for row, week in enumerate(_weeks(year, month)):
        week_total, traded = 0.0, False
        for col, day in enumerate(week):
            if not day:
                continue
            left, top = x0 + PAD + col * cell, y0 + _header(cell) + row * cell
            right, bottom = left + cell - 2, top + cell - 2
            if not first <= date(year, month, day) <= last:
                draw.rectangle((left, top, right, bottom), fill=OUTSIDE)
                continue
            pnl = days.get(date(year, month, day))
            fill = day_colour(pnl, scale)
            draw.rectangle((left, top, right, bottom), fill=fill)
            strong = fill not in (EMPTY, FLAT) and sum(fill) < 420
            ink = (255, 255, 255) if strong else INK
            if not tiny:
                number = _font(max(8, 14 * cell // CELL))
                draw.text((left + 3, top + 2), str(day), fill=ink, font=number)
            if pnl is not None:
                week_total += pnl
                traded = True
                if not small:
                    amount = _font(max(9, 15 * cell // CELL))
                    # Cents whenever the cell has room for them.
                    text = _money(pnl, cents=True)
                    if amount.getlength(text) > cell - 10:
                        text = _money(pnl)
                    draw.text((left + 6, top + cell - 30 * cell // CELL), text, fill=ink,
                              font=amount)  # fmt: skip
        if traded and not small:
            left = x0 + PAD + 7 * cell + 6
            top = y0 + _header(cell) + row * cell
            colour = GREEN if week_total > 0 else RED if week_total < 0 else MUTED
            draw.text((left, top + cell // 2 - 10), _money(week_total, cents=True), fill=colour,
                      font=_font(max(9, 16 * cell // CELL)))  # fmt: skip


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


def _money(value: float, *, cents: bool = False) -> str:
    """A signed amount: cents always with `cents` (a week's total has the column's room),
    else dropped from 1,000 up (a day's cell is narrow). Never "-0.00"."""
    shown = f"{abs(value):,.0f}" if abs(value) >= 1000 and not cents else f"{abs(value):,.2f}"
    if shown.strip("0.,") == "":
        return shown
    return ("+" if value > 0 else "-") + shown
