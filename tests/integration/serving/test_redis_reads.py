"""The auto-pipelined read client against a real Redis: order, errors, reconnection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from agents.redis_reads import PipelinedReads
from infra.processes import free_port, spawn, terminate
from infra.redis_server import redis_argv, redis_server_bin
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


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[PipelinedReads, list[asyncio.StreamWriter]]]:
    """A server that takes connections and reads, never answering; a client of it with a
    short timeout, and the connections it opened."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # reads, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reads = PipelinedReads(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        yield reads, connections
    finally:
        await reads.aclose()
        server.close()


async def test_a_connection_that_stops_answering_is_replaced() -> None:
    """A connection that stays open but never answers again (a dead peer behind a
    proxy, a half-open socket) failed every later read after the full timeout."""
    async with silent_server() as (reads, connections):
        with pytest.raises(RedisTimeout):
            await reads.get("k")
        await asyncio.sleep(0.05)
        assert reads._conn is not None and reads._conn.closed
        with pytest.raises(RedisTimeout):
            await reads.get("k")
        assert len(connections) == 2  # the second read opened a connection of its own


async def test_a_read_right_after_a_timeout_goes_to_a_new_connection() -> None:
    """Issued before the closed transport has reported it, a read was queued on the
    closing connection and failed with it (a ConnectionError, served degraded)."""
    async with silent_server() as (reads, connections):
        with pytest.raises(RedisTimeout):
            await reads.get("k")
        with pytest.raises(RedisTimeout):  # at once: no turn of the loop in between
            await reads.get("k")
        assert len(connections) == 2


async def test_unix_socket_urls_are_read_over_the_socket(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    argv = [*redis_argv(redis_server_bin(), free_port(), tmp_path), "--unixsocket", str(socket)]
    pid = spawn(argv, tmp_path / "redis.log", tmp_path)
    try:
        url = f"unix://{socket}"
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.05)
        client = redis.Redis.from_url(url)
        client.set("k", "over the socket")
        client.connection_pool.disconnect()
        reads = PipelinedReads(url)
        try:
            assert await reads.get("k") == b"over the socket"
        finally:
            await reads.aclose()
            await asyncio.sleep(0)  # the transport closes its socket on the next turn
    finally:
        terminate(pid)
