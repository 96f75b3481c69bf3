"""Screenshots on a trade: multipart upload, list, download, archive."""

from __future__ import annotations

import base64
import struct
from typing import Any

from .. import _trades as T
from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, integer, string
from .common import iso, param, path_int, storage_quota, trade_of

__all__ = ["archive_screenshot", "download_screenshot", "list_screenshots", "upload_screenshot"]


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xC3:
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None, None


_TYPES = {
    "image/png": ("png", (".png",), b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": ("jpg", (".jpg", ".jpeg"), b"\xff\xd8\xff"),
    "application/pdf": ("pdf", (".pdf",), b"%PDF-"),
}


async def list_screenshots(ctx: Ctx) -> Result:
    trade = T.source_of(ctx.store, trade_of(ctx))
    shots = T.screenshots_of(ctx.store, ctx.uid, trade)
    return Result(data={"screenshots": [T.screenshot_meta(s) for s in shots]})


async def upload_screenshot(ctx: Ctx) -> Result:
    number = path_int(ctx, "n")
    trade = T.source_of(ctx.store, trade_of(ctx))
    if "file" not in ctx.files:
        raise Invalid({"file": "is required (multipart form field 'file')"})
    unknown = set(ctx.form) - {"label", "sort_order"}
    if unknown:
        raise Invalid({k: "is not a known field" for k in unknown})
    filename, data, mime = ctx.files["file"]
    if len(data) > 10 * 1024 * 1024:
        raise ApiError(413, "request_too_large", "Screenshots are limited to 10 MB.")
    kind = _TYPES.get(mime)
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind is None or ext not in kind[1] or not data.startswith(kind[2]):
        raise Invalid({"file": "must be a JPEG, PNG or PDF (extension and type are checked)"})
    label = param(ctx, "label", string(0, 100))
    existing = T.screenshots_of(ctx.store, ctx.uid, trade)
    cap = 3 if ctx.pro else 1
    if len(existing) >= cap:
        raise ApiError(
            413,
            "limit_reached",
            "The per-trade screenshot cap is reached.",
            {"cap": "per_trade", "limit": cap, "current": len(existing), "plan": ctx.user["plan"]},
        )
    used = sum(
        s["file_size"] for s in ctx.store.all("screenshot", ctx.uid) if not s.get("archived")
    )
    quota = storage_quota(ctx.user)
    if used + len(data) > quota:
        raise ApiError(
            413,
            "limit_reached",
            "The account's storage quota is exhausted; delete files or upgrade the plan.",
            {
                "cap": "storage",
                "quota_bytes": quota,
                "used_bytes": used,
                "file_bytes": len(data),
                "plan": ctx.user["plan"],
            },
        )
    order = (
        param(ctx, "sort_order", integer())
        if ctx.form.get("sort_order")
        else (max((s["sort_order"] for s in existing), default=-1) + 1)
    )
    width, height = _image_size(data)
    sid = ctx.store.next_id("screenshot")
    shot = {
        "screenshot_id": sid,
        "trade_id": trade["trade_id"],
        "trade_number": number,
        "file_size": len(data),
        "original_size": len(data),
        "file_type": kind[0],
        "width": width,
        "height": height,
        "label": label,
        "sort_order": order,
        "uploaded_at": iso(ctx.now),
        "archived": False,
        "data_b64": base64.b64encode(data).decode(),
    }
    ctx.store.put("screenshot", sid, ctx.uid, shot)
    return Result(201, T.screenshot_meta(shot))


def _shot_of(ctx: Ctx) -> dict[str, Any]:
    """The live screenshot `{sid}` on trade `{n}` (a copy's are its source's), else 404."""
    trade = T.source_of(ctx.store, trade_of(ctx))
    shot = ctx.store.get("screenshot", path_int(ctx, "sid"), ctx.uid)
    if shot is None or shot["trade_id"] != trade["trade_id"] or shot.get("archived"):
        raise ApiError(404, "not_found", "Screenshot not found.")
    return shot


async def download_screenshot(ctx: Ctx) -> Result:
    shot = _shot_of(ctx)
    media = {"png": "image/png", "jpg": "image/jpeg", "pdf": "application/pdf"}[shot["file_type"]]
    return Result(
        raw=T.screenshot_bytes(shot),
        media_type=media,
        headers={"Cache-Control": "private, max-age=300"},
    )


async def archive_screenshot(ctx: Ctx) -> Result:
    shot = _shot_of(ctx)
    ctx.store.put("screenshot", shot["screenshot_id"], ctx.uid, {**shot, "archived": True})
    return Result(204)
