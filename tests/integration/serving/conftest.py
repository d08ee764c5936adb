"""Fixtures of the serving tests: a real Redis, a namespace per test, the app on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import redis
import uvicorn

from agents.server import listening_socket, uvicorn_config
from streams.settings import Settings, load_settings
from tests.integration.conftest import unique_namespace


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """KAPPAREC_REDIS_URL when it answers, else the integration stack's Redis."""
    url = os.environ.get("KAPPAREC_REDIS_URL", "")
    if url and _redis_answers(url):
        return url
    return str(request.getfixturevalue("stack").redis_url)


@pytest.fixture
def serving_settings(redis_url: str) -> Iterator[Settings]:
    """Settings with a namespace of their own; its keys are deleted afterwards."""
    s = load_settings(env={}, redis_url=redis_url, namespace=unique_namespace())
    yield s
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(match=f"{s.namespace}:*", count=1000):
            client.delete(key)


@dataclass
class Api:
    """The API served by uvicorn on a loopback port, and an HTTP client session."""

    base: str
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (already percent-encoded)."""
        return self.base + path


@pytest.fixture
async def api(serving_settings: Settings) -> AsyncIterator[Api]:
    """The HTTP app as `kapparec serve` runs it, against the real Redis."""
    async with serve(serving_settings) as served:
        yield served


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Api]:
    """Serve the HTTP app of ``settings`` on a loopback port while the block runs."""
    server = uvicorn.Server(uvicorn_config(settings))  # type: ignore[arg-type]
    sock = listening_socket("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the server stopped during start-up"
        await asyncio.sleep(0.01)
    port = sock.getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{port}", session)
    finally:
        server.should_exit = True
        await task
