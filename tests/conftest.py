"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Real PostgreSQL and Redis servers on loopback (`postgres_url`, `redis_url`).
pytest_plugins = ["tests.services"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than cores, at most four. Much of the suite waits on
    real processes, servers and a browser, so a spare worker keeps the cores busy."""
    return min(4, (os.cpu_count() or 1) + 1)


#: The longest files, handed out first so that no worker starts one of them last.
LONG_FIRST = (
    "tests/replicas/",
    "tests/drills/test_drills.py",
    "tests/e2e/test_oauth.py",
    "tests/e2e/test_hardening.py",
    "tests/e2e/test_journaling.py",
    "tests/server/writes/test_ledger_backends.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).relative_to(root).as_posix()
        return next((i for i, p in enumerate(LONG_FIRST) if path.startswith(p)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: each file keeps its own order
