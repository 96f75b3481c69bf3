"""A trade's chart as the model sees it: scaled down to a bounded size.

`get_trade` hands the model each image screenshot of a trade (a few at most) as image
content. A chart straight off a 4K screen is megabytes; the model needs far less to
read it, and every byte sent is context the conversation pays for. `shrink` keeps a
small file as it is and re-encodes a larger one as JPEG, smaller in quality and then in
size until it fits. It is CPU work: call it through `cpu.run`.
"""

from __future__ import annotations

import io

from .cpu import Deadline
from .errors import UserError

__all__ = ["MAX_CHARTS", "MAX_CHART_BYTES", "MAX_PIXELS", "shrink"]

#: The most one chart may take in a result, in bytes (base64 adds a third).
MAX_CHART_BYTES = 200_000

#: How many charts one `get_trade` shows at most.
MAX_CHARTS = 3

#: A picture with more pixels than this is not decoded (a decompression bomb).
MAX_PIXELS = 60_000_000

#: The longest side a re-encoded chart starts from.
_START_SIDE = 1600

_QUALITIES = (85, 70, 55)


def shrink(
    raw: bytes, deadline: Deadline, *, max_bytes: int = MAX_CHART_BYTES
) -> tuple[bytes, str]:
    """The chart within `max_bytes`, and its MIME type. A PNG or JPEG already small
    enough is kept as it is."""
    # Pillow loads only when a chart is shown.
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            width, height = probe.size
    except (UnidentifiedImageError, OSError):
        raise UserError("the screenshot is not an image the server can read") from None
    if width * height > MAX_PIXELS:
        raise UserError(f"the screenshot is {width}x{height} pixels, too large to scale down")
    if len(raw) <= max_bytes and kind in {"PNG", "JPEG"}:
        return raw, "image/png" if kind == "PNG" else "image/jpeg"
    with Image.open(io.BytesIO(raw)) as opened:
        picture = opened.convert("RGB")
    deadline.check()
    scale = min(1.0, _START_SIDE / max(width, height))
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        sized = picture if size == picture.size else picture.resize(size, Image.Resampling.LANCZOS)
        for quality in _QUALITIES:
            deadline.check()
            out = io.BytesIO()
            sized.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes:
                return out.getvalue(), "image/jpeg"
        if max(size) <= 64:
            raise UserError("the screenshot could not be scaled down far enough to show")
        scale *= 0.7
