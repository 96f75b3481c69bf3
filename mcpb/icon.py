"""Draw the desktop extension's icon: `python mcpb/icon.py OUT.png` (512 x 512 PNG, the
size Claude Desktop recommends).

A journal page with three candles on it, in the colours of the calendar picture. Drawn
at build time with Pillow (a dependency already), so no binary is kept in the repository.
"""

from __future__ import annotations

import sys

from PIL import Image, ImageDraw

SIZE = 512
#: The drawing below is in a 256-unit square, scaled to SIZE.
K = SIZE // 256
PAGE = (245, 247, 250)
INK = (32, 41, 56)
GAIN = (22, 163, 74)
LOSS = (220, 38, 38)


def _at(*units: int) -> tuple[int, ...]:
    return tuple(u * K for u in units)


def draw() -> Image.Image:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.rounded_rectangle(_at(8, 8, 248, 248), radius=48 * K, fill=INK)
    pen.rounded_rectangle(_at(40, 36, 216, 220), radius=20 * K, fill=PAGE)
    for y in (70, 186):  # the page's ruled lines
        pen.line(_at(60, y, 196, y), fill=(203, 213, 225), width=4 * K)
    # Three candles: (x, wick top, body top, body bottom, wick bottom, colour)
    for x, top, body_top, body_bottom, bottom, colour in (
        (88, 92, 108, 160, 176, LOSS),
        (128, 84, 96, 140, 168, GAIN),
        (168, 80, 88, 124, 150, GAIN),
    ):
        pen.line(_at(x, top, x, bottom), fill=colour, width=6 * K)
        pen.rounded_rectangle(_at(x - 14, body_top, x + 14, body_bottom), radius=4 * K, fill=colour)
    return image


if __name__ == "__main__":
    draw().save(sys.argv[1], format="PNG", optimize=True)
