"""The repository itself: no merge left half done."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)


def test_no_conflict_markers_in_sources_tests_or_docs() -> None:
    found = []
    for folder in ("src", "tests", "apps/src", "prompts", "mcpb"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".md", ".js", ".ts", ".html", ".json", ".sql", ".toml"}:
                text = path.read_text(encoding="utf-8", errors="replace")
                found += [f"{path.relative_to(ROOT)}" for _ in _MARKER.finditer(text)]
    for path in ROOT.glob("*.md"):
        found += [path.name for _ in _MARKER.finditer(path.read_text(encoding="utf-8"))]
    assert found == [], f"merge conflict markers left in: {sorted(set(found))}"
