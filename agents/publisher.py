"""The Redis side of publishing: pipelined writes with TTLs, reads of the serving copy.

Connection errors are retried by redis-py with exponential backoff and jitter. When those
retries run out, Redis is taken to be down: the call waits and tries again (backoff up to
5 s) for at most ``redis_outage_max_s``. The batch in hand is not acknowledged meanwhile,
so processing pauses, nothing is dropped, and the backlog is worked off once Redis
answers. An outage longer than that propagates the error: the worker stops without
acknowledging the batch, and the work is redone after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from agents.metrics import PUBLISH, WORKER
from streams.serving import Keys
from streams.settings import Settings

Write = tuple[str, bytes, int | None]  # key, value, ttl seconds (None: kept)
T = TypeVar("T")
log = logging.getLogger(__name__)
PAUSE_CAP_S = 5.0  # longest wait between two attempts while Redis is down


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
        self.outage_max_s = settings.redis_outage_max_s

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, waiting out a Redis outage of up to ``outage_max_s``.

        ``fn`` must be safe to run again (every write here sets whole values).
        """
        down_since: float | None = None
        delay = 0.25
        while True:
            try:
                result = await fn()
            except (ConnectionError, TimeoutError) as exc:
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                    log.warning(
                        "Redis unreachable (%s): processing paused until it answers, at "
                        "most %.0f s (KAPPAREC_REDIS_OUTAGE_MAX_S)",
                        exc,
                        self.outage_max_s,
                    )
                if now - down_since + delay > self.outage_max_s:
                    log.error("Redis still unreachable after %.0f s: giving up", now - down_since)
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, PAUSE_CAP_S)
                continue
            if down_since is not None:
                waited = time.monotonic() - down_since
                log.warning("Redis answers again after %.1f s: processing resumed", waited)
            return result

    async def write(self, writes: Sequence[Write]) -> None:
        """Set every key with its TTL in one pipelined round trip."""
        if not writes:
            return
        start = time.perf_counter()

        async def send() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value, ttl in writes:
                    pipe.set(key, value, ex=ttl)
                await pipe.execute()

        await self.call(send)
        WORKER.observe(PUBLISH, time.perf_counter() - start)
        self.writes += len(writes)

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` (lists of items that no longer exist) in one round trip."""
        if keys:
            await self.call(lambda: self.redis.delete(*keys))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` (``None`` where missing) in one round trip."""
        if not keys:
            return []
        return list(await self.call(lambda: self.redis.mget(list(keys))))

    async def activate_if_unset(self, version: int) -> bool:
        """Point readers at ``version`` when no version is active yet."""
        return bool(
            await self.call(lambda: self.redis.set(self.keys.active, str(version), nx=True))
        )
