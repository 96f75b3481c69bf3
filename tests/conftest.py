"""Shared test fixtures."""

from __future__ import annotations

import pytest

#: Real PostgreSQL and Redis servers on loopback (`postgres_url`, `redis_url`).
pytest_plugins = ["tests.services"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
