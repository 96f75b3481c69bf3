"""The test services themselves: a real Redis on loopback, one empty database per test."""

from __future__ import annotations

import redis


def test_redis_url_is_a_fresh_database_of_a_real_server(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.info("server")["redis_version"]
