"""Fixtures of the serving tests: a real Redis, a namespace per test, the app on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from agents.http_api import build_http_app
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


@pytest.fixture
async def api(serving_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The HTTP app on a real loopback port, against the real Redis."""
    async with TestClient(TestServer(build_http_app(serving_settings))) as client:
        yield client
