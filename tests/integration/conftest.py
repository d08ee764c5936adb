"""Session-scoped real broker and Redis: Docker containers when an engine answers, else the
embedded stack (Tansu + redis-server) started through infra.stack on free ports.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from agents.admin import ensure_topics
from agents.redis_scan import delete_matching
from infra.stack import StackError, down, up
from infra.workers import WorkerProcess
from streams.settings import Settings, load_settings
from streams.topics import build_topics


@dataclass(frozen=True)
class Stack:
    """Addresses of the broker and Redis the integration tests run against."""

    kafka_bootstrap: str
    redis_url: str
    kind: str  # "docker" or "embedded"


def _docker_answers() -> bool:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return False
    try:
        client = docker.from_env()
    except (DockerException, OSError):
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError):
        # requests' ConnectionError is an OSError.
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _containers() -> Iterator[Stack]:
    try:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

    with KafkaContainer().with_kraft() as kafka, RedisContainer("redis:7") as redis:
        host = redis.get_container_host_ip()
        port = redis.get_exposed_port(6379)
        yield Stack(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "docker")


@contextlib.contextmanager
def _embedded(state_dir: Path) -> Iterator[Stack]:
    # Reuses KAPPAREC_REDIS_URL when it answers, else starts a redis-server; up() itself
    # stops whatever it started when it fails.
    redis_env = {k: v for k, v in os.environ.items() if k == "KAPPAREC_REDIS_URL"}
    settings = load_settings(env=redis_env, state_dir=state_dir)
    state = up(settings)
    try:
        yield Stack(state["kafka_bootstrap"], state["redis_url"], "embedded")
    finally:
        down(settings)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, ci: bool) -> Iterator[Stack]:
    """A real Kafka-protocol broker and a real Redis for the whole session."""
    if _docker_answers():
        source: contextlib.AbstractContextManager[Stack] = _containers()
    else:
        source = _embedded(tmp_path_factory.mktemp("stack"))
    with contextlib.ExitStack() as resources:
        try:
            started = resources.enter_context(source)
        except StackError as exc:
            message = f"cannot start the integration stack: {exc}"
            if ci:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        yield started


def unique_namespace() -> str:
    """A namespace no other test uses, so topics, groups and Redis keys don't collide."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace() -> str:
    """A fresh unique namespace (also handy as a topic-name prefix)."""
    return unique_namespace()


@pytest.fixture
def make_settings(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Factory: settings pointing at the session stack, with a unique namespace per call.

    The namespaces' keys in the session's Redis are deleted afterwards: catalogue
    records have no TTL, and ``KAPPAREC_REDIS_URL`` may be a Redis that outlives the run.
    """
    made: list[str] = []

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": stack.kafka_bootstrap,
            "redis_url": stack.redis_url,
            "namespace": unique_namespace(),
            "state_dir": tmp_path / "state",
        }
        values.update(overrides)
        if values["redis_url"] == stack.redis_url:  # not a test's own, stopped, Redis
            made.append(values["namespace"])
        # env={}: the developer's own KAPPAREC_* variables must not leak into tests.
        return load_settings(env={}, **values)

    yield make
    if made:
        r = redis.Redis.from_url(stack.redis_url)
        try:
            for ns in made:
                delete_matching(r, f"{ns}:*")
        finally:
            r.close()


# Short timers so a test's worker drains, settles and rejoins in seconds.
FAST = {"settle_s": 1.0, "flush_interval_s": 0.2, "session_timeout_s": 6.0, "batch_within_s": 0.02}


@pytest.fixture
def fast_settings(
    make_settings: Callable[..., Settings], namespace: str
) -> Callable[..., Settings]:
    """Factory: fast-settling settings with topics of their own, created up front."""

    def make(**overrides: Any) -> Settings:
        s = make_settings(topic_prefix=f"{namespace}.", **{**FAST, **overrides})
        ensure_topics(s.kafka_bootstrap, build_topics(s).all())
        return s

    return make


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """One worker process ("w1") on the test module's ``settings``, stopped at the end."""
    w = WorkerProcess(settings, tmp_path / "w1.log", worker_id="w1")
    yield w
    w.stop(grace_s=10.0)
