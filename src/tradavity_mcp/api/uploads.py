"""Screenshot files: what the API accepts, checked before a byte is sent.

The API takes PNG, JPEG and PDF up to 10 MB and checks both the extension and the MIME
type. We identify the type from the file's magic bytes (never trusting the name), and
give the upload a filename whose extension matches what the bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from .errors import RequestInvalid

__all__ = ["MAX_SCREENSHOT_BYTES", "Upload", "detect_type", "prepare_upload"]

MAX_SCREENSHOT_BYTES = 10 * 1024 * 1024

_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
_EXTENSIONS = {
    "image/png": {".png"},
    "image/jpeg": {".jpg", ".jpeg"},
    "application/pdf": {".pdf"},
}


@dataclass(frozen=True)
class Upload:
    filename: str
    mime_type: str
    size: int


def detect_type(content: bytes) -> tuple[str, str] | None:
    """(MIME type, canonical extension) from the magic bytes, or None."""
    for magic, mime, ext in _SIGNATURES:
        if content.startswith(magic):
            return mime, ext
    return None


def prepare_upload(content: bytes, filename: str, *, label: str | None = None) -> Upload:
    """Check size and type; return the name and MIME type to upload under."""
    if not content:
        raise RequestInvalid("the screenshot file is empty", {"file": "is empty"})
    if len(content) > MAX_SCREENSHOT_BYTES:
        mb = len(content) / (1024 * 1024)
        raise RequestInvalid(
            f"the screenshot is {mb:.1f} MB; the API accepts at most 10 MB per file",
            {"file": "larger than 10 MB"},
        )
    detected = detect_type(content)
    if detected is None:
        raise RequestInvalid(
            "the file is not a PNG, JPEG or PDF (judged by its content, not its name)",
            {"file": "must be PNG, JPEG or PDF"},
        )
    if label is not None and len(label) > 100:
        raise RequestInvalid(
            "label is longer than 100 characters", {"label": "at most 100 characters"}
        )
    mime, ext = detected
    name = PurePath(filename or "screenshot").name or "screenshot"
    path = PurePath(name)
    if path.suffix.lower() not in _EXTENSIONS[mime]:
        name = (path.stem or "screenshot") + ext
    return Upload(filename=name, mime_type=mime, size=len(content))
