"""Reading a local file for upload, confined to the directories the user allowed.

A model may ask for any path; we read only regular files whose real location (after
every `..` and symlink is resolved) lies inside an allowed directory, and we check that
the file we opened is the one we checked, so a swapped symlink cannot slip through.

Nothing here may block the server: the path is checked with `stat` before it is opened
(a FIFO, a device or a socket is refused unopened), it is opened with `O_NONBLOCK` (so
a FIFO swapped in after the check cannot hang the open), and `read_confined_async` runs
the whole read in a worker thread under a timeout (a stuck network mount cannot freeze
the event loop either).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import anyio
import anyio.to_thread

from .errors import UserError

__all__ = [
    "READ_TIMEOUT_SECONDS",
    "dirs_from_roots",
    "newest_image",
    "newest_image_async",
    "read_confined",
    "read_confined_async",
]

#: How long reading one screenshot may take before the call gives up.
READ_TIMEOUT_SECONDS = 10.0

_CHUNK = 1 << 20


def dirs_from_roots(uris: Sequence[str]) -> list[Path]:
    """Directories from the client's `file://` roots (others are ignored)."""
    out: list[Path] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            out.append(Path(unquote(parsed.path)).resolve())
    return out


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _not_regular(path: str, mode: int) -> UserError:
    return UserError(
        f"{path} is not a regular file ({_kind(mode)}); only image or PDF files can be attached"
    )


def read_confined(path: str, allowed: Sequence[Path], *, max_bytes: int) -> bytes:
    """The bytes of `path`, if it is a regular file inside one of `allowed`.

    Never blocks on a special file. Raises `UserError` saying why a path is refused.
    """
    real, checked = _confined(path, allowed)
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_NOCTTY", 0)
    )
    try:
        fd = os.open(real, flags)
    except OSError:
        raise UserError(f"cannot open {path}") from None
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
            raise UserError(f"{path} changed while it was being opened; try again")
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        if info.st_size > max_bytes:
            raise UserError(
                f"{path} is {info.st_size / 1048576:.1f} MB; screenshots are limited to 10 MB"
            )
        return _read_up_to(fd, max_bytes, info.st_size)
    except BlockingIOError:
        raise UserError(
            f"{path} is not ready to be read; only regular files can be attached"
        ) from None
    finally:
        os.close(fd)


def _confined(path: str, allowed: Sequence[Path]) -> tuple[Path, os.stat_result]:
    """The real path of `path` and its stat, if it is a regular file inside `allowed`."""
    if not allowed:
        raise UserError(
            "reading local files is off: no allowed directories. Set TRADAVITY_ALLOWED_DIRS "
            "(or --allowed-dir) to the folder with your charts, or send the image as base64 data"
        )
    if "\x00" in path:
        raise UserError("path contains a NUL character; pass the file's real path")
    try:
        real = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise UserError(f"no such file: {path}") from None
    roots = [d.resolve() for d in allowed]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise UserError(f"{path} is outside the allowed directories ({shown})")
    try:
        checked = os.stat(real)
    except OSError:
        raise UserError(f"cannot read {path}") from None
    # Refuse special files before opening them: opening a FIFO for reading waits for
    # a writer, and a device may never answer.
    if not stat.S_ISREG(checked.st_mode):
        raise _not_regular(path, checked.st_mode)
    return real, checked


def _read_up_to(fd: int, max_bytes: int, expected: int) -> bytes:
    """At most `max_bytes` + 1 bytes (one more tells a file that grew past the cap).

    The file's size as it was opened is read at once, into one buffer: for a file that
    did not change that buffer is the result (a join of one chunk returns it), never a
    copy of chunks joined (a 10 MB chart was held twice that way)."""
    chunks: list[bytes] = []
    size = 0
    want = min(expected, max_bytes) + 1
    while size <= max_bytes:
        chunk = os.read(fd, min(want, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        want = _CHUNK
    return b"".join(chunks)


async def read_confined_async(
    path: str,
    allowed: Sequence[Path],
    *,
    max_bytes: int,
    limit_seconds: float = READ_TIMEOUT_SECONDS,
) -> bytes:
    """`read_confined` in a worker thread, given up after `limit_seconds`: the event
    loop (and every other call) keeps running whatever the file system does."""
    with anyio.move_on_after(limit_seconds) as scope:
        return await anyio.to_thread.run_sync(
            lambda: read_confined(path, allowed, max_bytes=max_bytes), abandon_on_cancel=True
        )
    assert scope.cancelled_caught
    raise UserError(f"reading {path} took longer than {limit_seconds:g} s; gave up")


#: The files `newest_image` considers: pictures (a chart), not PDFs.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})

#: How many directory entries one look for the newest image reads at most (a folder of
#: a million files is not walked to the end).
MAX_SCANNED = 20_000

#: How deep below an allowed folder the look goes (0: the folder itself only).
MAX_DEPTH = 2


def newest_image(allowed: Sequence[Path], *, since: float | None = None) -> Path:
    """The most recently modified PNG/JPEG file in the allowed folders (and their
    subfolders, `MAX_DEPTH` deep), modified at or after `since` (epoch seconds) if given.

    Symbolic links are never followed, to a file or a folder: what is found lies inside
    an allowed folder. Raises `UserError` when there is none, naming the folders.
    """
    if not allowed:
        raise UserError(
            "reading local files is off: no allowed directories. Set TRADAVITY_ALLOWED_DIRS "
            "(or --allowed-dir) to the folder with your charts, or send the image as base64 data"
        )
    best: tuple[float, str] | None = None
    scanned = 0
    roots = [d.resolve() for d in allowed]
    pending: list[tuple[Path, int]] = [(root, 0) for root in roots]
    while pending and scanned < MAX_SCANNED:
        folder, depth = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    scanned += 1
                    if scanned > MAX_SCANNED:
                        break
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if depth < MAX_DEPTH:
                                pending.append((Path(entry.path), depth + 1))
                            continue
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                            continue
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        continue
                    if since is not None and mtime < since:
                        continue
                    if best is None or (mtime, entry.path) > best:
                        best = (mtime, entry.path)
        except OSError:
            continue
    if best is None:
        shown = ", ".join(str(r) for r in roots)
        within = " modified in that window" if since is not None else ""
        raise UserError(
            f"no PNG or JPEG file{within} in the allowed folders ({shown}); save the chart "
            "there, or pass its path"
        )
    return Path(best[1])


async def newest_image_async(
    allowed: Sequence[Path],
    *,
    since: float | None = None,
    limit_seconds: float = READ_TIMEOUT_SECONDS,
) -> Path:
    """`newest_image` in a worker thread, given up after `limit_seconds`."""
    with anyio.move_on_after(limit_seconds) as scope:
        return await anyio.to_thread.run_sync(
            lambda: newest_image(allowed, since=since), abandon_on_cancel=True
        )
    assert scope.cancelled_caught
    raise UserError(f"looking for the newest chart took longer than {limit_seconds:g} s; gave up")
