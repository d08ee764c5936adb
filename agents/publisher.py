"""The Redis side of publishing: pipelined writes with TTLs, reads of the serving copy.

Connection errors are retried by redis-py with exponential backoff and jitter; when the
retries run out the error propagates, the batch is not acknowledged, and the worker
stops so the work is redone after a restart rather than silently skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from agents.metrics import PUBLISH, WORKER
from streams.serving import Keys
from streams.settings import Settings

Write = tuple[str, bytes, int]  # key, value, ttl seconds


def connect(url: str, retries: int = 8, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client that retries connection errors with backoff and jitter.

    ``options`` (``streams.security.redis_options``: username, password, TLS CA) fill in
    what the URL does not say.
    """
    return aioredis.Redis.from_url(
        url,
        **options,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), retries),
        retry_on_error=[ConnectionError, TimeoutError],
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
        health_check_interval=30,
    )


class Publisher:
    """Writes published lists of one version; reads the serving copy back."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.namespace, settings.version)
        self.writes = 0

    async def write(self, writes: Sequence[Write]) -> None:
        """Set every key with its TTL in one pipelined round trip."""
        if not writes:
            return
        start = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, value, ttl in writes:
                pipe.set(key, value, ex=ttl)
            await pipe.execute()
        WORKER.observe(PUBLISH, time.perf_counter() - start)
        self.writes += len(writes)

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` (lists of items that no longer exist) in one round trip."""
        if keys:
            await self.redis.delete(*keys)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` (``None`` where missing) in one round trip."""
        if not keys:
            return []
        return list(await self.redis.mget(list(keys)))

    async def activate_if_unset(self, version: int) -> bool:
        """Point readers at ``version`` when no version is active yet."""
        return bool(await self.redis.set(self.keys.active, str(version), nx=True))
