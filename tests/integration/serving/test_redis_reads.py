"""The auto-pipelined read client against a real Redis: order, errors, reconnection."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.exceptions import ConnectionError, ResponseError

from agents.redis_reads import PipelinedReads
from streams.settings import Settings


async def test_concurrent_reads_get_their_own_replies(serving_settings: Settings) -> None:
    ns = serving_settings.namespace
    with redis.Redis.from_url(serving_settings.redis_url) as client:
        client.mset({f"{ns}:k{i}": f"v{i}" for i in range(300)})
    reads = PipelinedReads(serving_settings.redis_url)
    try:
        got = await asyncio.gather(*(reads.get(f"{ns}:k{i}") for i in range(300)))
        assert got == [f"v{i}".encode() for i in range(300)]
        assert await reads.mget([f"{ns}:k1", f"{ns}:missing", f"{ns}:k2"]) == [b"v1", None, b"v2"]
        assert await reads.get(f"{ns}:missing") is None
    finally:
        await reads.aclose()


async def test_errors_and_reconnection(serving_settings: Settings) -> None:
    ns = serving_settings.namespace
    with redis.Redis.from_url(serving_settings.redis_url) as client:
        client.set(f"{ns}:k", "v")
        client.rpush(f"{ns}:list", "x")
    reads = PipelinedReads(serving_settings.redis_url)
    try:
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await reads.get(f"{ns}:list")
        assert await reads.get(f"{ns}:k") == b"v"  # the connection is still in step
        assert reads._conn is not None
        reads._conn.transport.abort()
        await asyncio.sleep(0.05)
        assert await reads.get(f"{ns}:k") == b"v"  # a new connection, same database
    finally:
        await reads.aclose()


async def test_unreachable_redis_is_a_connection_error() -> None:
    reads = PipelinedReads("redis://127.0.0.1:1/0", timeout=1.0)
    with pytest.raises(ConnectionError):
        await reads.get("k")
