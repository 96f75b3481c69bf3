"""Local files: read only inside the allowed directories and the client's roots."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tradavity_mcp.server.errors import UserError
from tradavity_mcp.server.files import dirs_from_roots, newest_image, read_confined


def test_files_are_read_only_inside_allowed_dirs(tmp_path: Path) -> None:
    allowed = tmp_path / "charts"
    allowed.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    good = allowed / "entry.png"
    good.write_bytes(b"\x89PNG\r\n\x1a\nchart")
    (allowed / "link.png").symlink_to(secret)
    (allowed / "sub").mkdir()

    assert read_confined(str(good), [allowed], max_bytes=100) == good.read_bytes()
    for bad in [str(secret), str(allowed / ".." / "secret.png"), str(allowed / "link.png")]:
        with pytest.raises(UserError, match="outside the allowed directories"):
            read_confined(bad, [allowed], max_bytes=100)
    with pytest.raises(UserError, match="not a regular file"):
        read_confined(str(allowed / "sub"), [allowed], max_bytes=100)
    with pytest.raises(UserError, match="no such file"):
        read_confined(str(allowed / "missing.png"), [allowed], max_bytes=100)
    with pytest.raises(UserError, match="TRADAVITY_ALLOWED_DIRS"):
        read_confined(str(good), [], max_bytes=100)
    with pytest.raises(UserError, match="10 MB"):
        read_confined(str(good), [allowed], max_bytes=4)


def test_roots_become_directories(tmp_path: Path) -> None:
    uri = "file://" + str(tmp_path).replace(os.sep, "/")
    assert dirs_from_roots([uri, "https://example.com/x"]) == [tmp_path.resolve()]


def test_newest_image_stays_inside_and_follows_no_link(tmp_path: Path) -> None:
    allowed = tmp_path / "charts"
    (allowed / "2026").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    now = time.time()

    def put(path: Path, age: float) -> Path:
        path.write_bytes(b"\x89PNG\r\n\x1a\n")
        os.utime(path, (now - age, now - age))
        return path

    put(allowed / "old.png", 300)
    deeper = put(allowed / "2026" / "entry.JPG", 60)
    put(allowed / "notes.txt", 1)  # not a picture
    put(outside / "newest.png", 0)
    (allowed / "linked").symlink_to(outside, target_is_directory=True)
    (allowed / "link.png").symlink_to(outside / "newest.png")
    assert newest_image([allowed]) == deeper
    assert newest_image([allowed], since=now - 120) == deeper
    with pytest.raises(UserError, match="modified in that window"):
        newest_image([allowed], since=now - 30)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no PNG or JPEG file in the allowed folders"):
        newest_image([empty])
    with pytest.raises(UserError, match="TRADAVITY_ALLOWED_DIRS"):
        newest_image([])
