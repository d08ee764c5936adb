"""The HTTP API during a Redis outage: the last trending list, marked degraded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from streams.settings import load_settings
from tests.integration.conftest import unique_namespace
from tests.integration.serving.conftest import Api, serve
from tests.integration.serving.support import get, seed_lists
from tests.integration.test_redis_outage import OwnRedis


@pytest.fixture
async def outage_api(tmp_path: Path) -> AsyncIterator[tuple[Api, OwnRedis]]:
    own = OwnRedis(tmp_path)
    own.start()
    settings = load_settings(env={}, redis_url=own.url, namespace=unique_namespace())
    with redis.Redis.from_url(own.url) as client:
        seed_lists(client, settings.namespace)
    try:
        async with serve(settings) as api:
            yield api, own
    finally:
        own.stop()


async def test_lists_fall_back_to_the_last_trending_list(
    outage_api: tuple[Api, OwnRedis],
) -> None:
    api, own = outage_api
    normal = await get(api, "/recommendations/u1?k=3")
    assert "degraded" not in normal and normal["sources"] == ["user"]
    await asyncio.sleep(0.2)  # the server read trending at start-up
    own.stop()
    body = await get(api, "/recommendations/u1?k=3&recent=i8")
    assert body["degraded"] is True
    assert body["sources"] == ["trending"]
    assert body["items"] == [["i2", 8.0, "t"], ["i1", 7.0, "t"], ["i10", 6.0, "t"]]  # not i8
    item = await get(api, "/items/i2/also-bought?k=2")
    assert item["degraded"] is True and [r[0] for r in item["items"]] == ["i8", "i1"]
    own.start()  # Redis back: answers are no longer degraded
    for _ in range(50):
        async with api.session.get(api.url("/recommendations/u1?k=3")) as response:
            if response.status == 200 and "degraded" not in await response.json():
                break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("still degraded after Redis came back")


async def test_without_a_trending_list_read_an_outage_is_a_503(tmp_path: Path) -> None:
    own = OwnRedis(tmp_path)
    own.start()
    settings = load_settings(env={}, redis_url=own.url, namespace=unique_namespace())
    own.stop()  # before the server ever read anything
    async with serve(settings) as api:
        body = await get(api, "/recommendations/u1", status=503)
        assert body["error"] == "redis_unavailable"
