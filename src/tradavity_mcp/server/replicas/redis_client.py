"""The server's one Redis client (`--redis` / TRADAVITY_REDIS_URL).

`build_server` opens it once per process when a Redis URL is configured and hands it to
every part that shares state between replicas (the sync streams and subscription bus, the
rate window, the `/me` cache). Replies are decoded to `str` (UTF-8).

Opening does not connect: the pool dials on first use, so a server whose Redis is down
still starts, and each command fails on its own (short timeouts) until Redis is back.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["open_redis"]

#: Seconds to connect, and to wait for one command's answer: a Redis that is away must not
#: hold a tool call for long.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0


def open_redis(url: str) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://), its replies decoded to str.

    A command that meets a dropped connection is retried twice after a short backoff (the
    connection redialled), which carries it over a Redis restart of a fraction of a second.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name="tradavity-mcp",
    )
