"""Local files: read only inside the allowed directories and the client's roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tradavity_mcp.server.errors import UserError
from tradavity_mcp.server.files import dirs_from_roots, read_confined


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
