"""Reading a local file for upload, confined to the directories the user allowed.

A model may ask for any path; we read only regular files whose real location (after
every `..` and symlink is resolved) lies inside an allowed directory, and we check that
the file we opened is the one we checked, so a swapped symlink cannot slip through.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from ._calls import UserError

__all__ = ["dirs_from_roots", "read_confined"]


def dirs_from_roots(uris: Sequence[str]) -> list[Path]:
    """Directories from the client's `file://` roots (others are ignored)."""
    out: list[Path] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            out.append(Path(unquote(parsed.path)).resolve())
    return out


def read_confined(path: str, allowed: Sequence[Path], *, max_bytes: int) -> bytes:
    if not allowed:
        raise UserError(
            "reading local files is off: no allowed directories. Set TRADAVITY_ALLOWED_DIRS "
            "(or --allowed-dir) to the folder with your charts, or send the image as base64 data"
        )
    requested = Path(path).expanduser()
    try:
        real = requested.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UserError(f"no such file: {path}") from None
    roots = [d.resolve() for d in allowed]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise UserError(f"{path} is outside the allowed directories ({shown})")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        raise UserError(f"cannot open {path}") from None
    try:
        info = os.fstat(fd)
        checked = os.stat(real)
        if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
            raise UserError(f"{path} changed while it was being opened; try again")
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise UserError(
                f"{path} is {info.st_size / 1048576:.1f} MB; screenshots are limited to 10 MB"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(max_bytes + 1)
    finally:
        os.close(fd)
