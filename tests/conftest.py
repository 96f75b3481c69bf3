"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

#: Real PostgreSQL and Redis servers on loopback (`postgres_url`, `redis_url`).
pytest_plugins = ["tests.services"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than cores, at most four. Much of the suite waits on
    real processes, servers and a browser, so a spare worker keeps the cores busy."""
    return min(4, (os.cpu_count() or 1) + 1)


#: Files whose tests share a worker, as one unit: the browser tests share one browser.
TOGETHER = ("tests/apps/",)


class _Together(LoadFileScheduling):  # type: ignore[misc]  # xdist ships no types
    """`--dist loadfile`, with each folder of `TOGETHER` handed out as one unit."""

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        return next((t for t in TOGETHER if scope.startswith(t)), scope)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return _Together(config, log) if config.getoption("dist") == "loadfile" else None


#: The longest files (seconds on one worker of a 2-core machine), handed out first so that
#: no worker starts one of them last (`--no-loadscope-reorder` keeps this order).
LONG_FIRST = (
    "tests/e2e/test_slow_clients_process.py",  # 33
    "tests/e2e/test_slow_clients_default.py",  # 30 (a deadline of 30 s, waited out)
    "tests/drills/test_drills.py",  # 18
    "tests/replicas/",  # 17
    "tests/e2e/test_slow_clients.py",  # 15
    "tests/e2e/test_client_address.py",  # 14 (two server processes, budgets refilling)
    "tests/apps/",  # 12
    "tests/server/oauth/test_bounds.py",  # 12
    "tests/test_cli.py",  # 9
    "tests/e2e/test_oauth_stream.py",  # 8 (waits for tokens to expire)
    "tests/drills/test_secrets_and_load.py",  # 5
    "tests/server/writes/test_ledger_backends.py",  # 5
    "tests/server/test_calendar_png.py",  # 5 (every cell size drawn at its most months)
    "tests/server/oauth/test_replicas_pg.py",  # 5
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
