"""Redis stopped while events flow: what the worker and the read path do.

Contract (agents/publisher.py): redis-py retries a failed command with exponential
backoff and jitter; then the worker waits for Redis, with the batch in hand not
acknowledged, so processing pauses and resumes when Redis answers. An outage longer than
``redis_outage_max_s`` makes the worker exit with status 70, still without acknowledging
the batch: a restarted worker (a supervisor's job) redoes it. Nothing is dropped either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.admin import check_redis, ensure_topics
from agents.app import EXIT_HANDLER_FAILED
from agents.producer import produce
from agents.publisher import connect
from agents.reader import Reader
from infra.processes import HOST, Service, free_port, spawn, terminate, wait_ready
from infra.redis_server import redis_argv, redis_server_bin
from infra.workers import WorkerProcess
from schemas.events import Interaction
from streams.serving import Keys
from streams.settings import Settings
from streams.topics import build_topics
from tests.integration.test_pipeline import drain

T0 = 1_570_000_000_000


class OwnRedis:
    """A redis-server this test may stop and start again on the same port."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.pid: int | None = None

    def start(self) -> None:
        argv = redis_argv(redis_server_bin(), self.port, self.state)
        self.pid = spawn(argv, self.state / "redis.log", self.state)
        service = Service("redis", self.pid, argv[0], self.url, self.state / "redis.log")
        wait_ready(service, lambda: check_redis(self.url, timeout=1.0), 20.0)

    def stop(self) -> None:
        if self.pid is not None:
            terminate(self.pid)
            self.pid = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def test_worker_pauses_through_a_30s_outage_then_catches_up(
    own_redis: OwnRedis,
    make_settings: Callable[..., Settings],
    namespace: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        topic_prefix=f"{namespace}.", redis_url=own_redis.url, settle_s=1.0, batch_within_s=0.02
    )
    ensure_topics(settings.kafka_bootstrap, build_topics(settings).all())
    keys = Keys(settings.namespace, settings.version)
    worker = WorkerProcess(settings, tmp_path / "w1.log", worker_id="w1")
    try:
        assert produce(settings, [Interaction("e1", "view", "u1", "A", T0)], progress=False).ok
        drain(settings, worker)
        own_redis.stop()
        outage = time.monotonic()
        during = [Interaction(f"e{i}", "view", f"u{i}", "B", T0 + i) for i in range(2, 12)]
        assert produce(settings, during, progress=False).ok
        while time.monotonic() - outage < 30:
            assert worker.alive, f"worker exited during the outage:\n{worker.tail()}"
            time.sleep(1.0)
        assert asyncio.run(_read_fails(settings)), "a read during the outage did not fail"
        own_redis.start()
        drain(settings, worker, timeout=120)  # the same worker, never restarted
        assert worker.alive
        r = redis.Redis.from_url(own_redis.url)
        try:
            for ev in during:
                assert r.get(keys.user(ev.user_id)) is not None, f"{ev.event_id} was lost"
        finally:
            r.close()
        assert "processing paused" in worker.tail(2000), "the pause was not logged"
    finally:
        worker.stop(grace_s=10.0)


def test_outage_beyond_the_limit_stops_the_worker_and_a_restart_catches_up(
    own_redis: OwnRedis,
    make_settings: Callable[..., Settings],
    namespace: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        topic_prefix=f"{namespace}.",
        redis_url=own_redis.url,
        settle_s=1.0,
        batch_within_s=0.02,
        redis_outage_max_s=3.0,
    )
    ensure_topics(settings.kafka_bootstrap, build_topics(settings).all())
    keys = Keys(settings.namespace, settings.version)
    first = WorkerProcess(settings, tmp_path / "w1.log", worker_id="w1")
    workers = [first]
    try:
        assert produce(settings, [Interaction("e1", "view", "u1", "A", T0)], progress=False).ok
        drain(settings, first)
        own_redis.stop()
        outage = time.monotonic()
        during = Interaction("e2", "view", "u2", "B", T0 + 1)
        assert produce(settings, [during], progress=False).ok
        code = first.proc.wait(timeout=60)
        gave_up_after = time.monotonic() - outage
        print(f"\nworker exited {code} {gave_up_after:.1f}s after Redis stopped")
        assert code == EXIT_HANDLER_FAILED, first.tail()
        assert asyncio.run(_read_fails(settings)), "a read during the outage did not fail"
        time.sleep(max(0.0, 30 - (time.monotonic() - outage)))  # a 30 s outage in all
        own_redis.start()
        second = WorkerProcess(settings, tmp_path / "w2.log", worker_id="w2")
        workers.append(second)
        drain(settings, second, timeout=180)
        r = redis.Redis.from_url(own_redis.url)
        try:
            assert r.get(keys.user("u2")) is not None, "the event sent during the outage was lost"
            assert r.get(keys.user("u1")) is not None, "refresh did not rebuild the emptied cache"
        finally:
            r.close()
    finally:
        for w in workers:
            w.stop(grace_s=10.0)


async def _read_fails(settings: Settings) -> bool:
    client = connect(settings.redis_url, retries=1)
    try:
        await Reader(client, settings.namespace, version=settings.version).recommendations("u1")
    except RedisConnectionError:
        return True
    finally:
        await client.aclose()
    return False
