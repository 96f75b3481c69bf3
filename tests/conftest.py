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


#: The longest files (seconds on one worker of a 2-core machine), handed out first so that
#: no worker starts one of them last (`--no-loadscope-reorder` keeps this order).
LONG_FIRST = (
    "tests/drills/test_drills.py",  # 18
    "tests/replicas/",  # 17
    "tests/test_cli.py",  # 9
    "tests/apps/test_calendar.py",  # 6
    "tests/apps/test_dashboard.py",  # 6
    "tests/drills/test_secrets_and_load.py",  # 5
    "tests/server/writes/test_ledger_backends.py",  # 5
    "tests/e2e/test_journaling.py",  # 4
    "tests/e2e/test_hardening.py",  # 4
    "tests/e2e/test_oauth_browser.py",  # 4
    "tests/e2e/test_oauth.py",  # 4
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).relative_to(root).as_posix()
        return next((i for i, p in enumerate(LONG_FIRST) if path.startswith(p)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: each file keeps its own order
