"""Redis AUTH end to end, and a worker that fails fast, naming the setting, when a service is
unreachable or refuses it. Kafka SASL/TLS cannot be tested here: the embedded broker (Tansu)
speaks neither; their mapping onto every client is unit-tested (tests/unit/test_security.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ResponseError

from agents.admin import ServiceUnavailable, check_redis, ensure_topics
from agents.http_api import HttpApi
from agents.producer import produce
from infra.processes import HOST, Service, free_port, spawn, terminate, wait_ready
from infra.redis_server import redis_argv, redis_server_bin
from infra.workers import WorkerProcess
from schemas.events import Interaction
from streams.serving import Keys
from streams.settings import Settings, load_settings, to_env
from streams.topics import build_topics
from tests.integration.test_pipeline import drain

PASSWORD = "s3cret-redis-pass"
T0 = 1_570_000_000_000


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server that requires a password; yields its URL without the password."""
    state = tmp_path_factory.mktemp("auth-redis")
    port = free_port()
    argv = [*redis_argv(redis_server_bin(), port, state), "--requirepass", PASSWORD]
    pid = spawn(argv, state / "redis.log", state)
    url = f"redis://{HOST}:{port}/0"
    service = Service("redis", pid, argv[0], url, state / "redis.log")
    try:
        wait_ready(service, lambda: check_redis(url, timeout=1.0, password=PASSWORD), 20.0)
        yield url
    finally:
        terminate(pid)


def test_redis_refuses_without_password_and_names_the_setting(auth_redis: str) -> None:
    with pytest.raises(ServiceUnavailable, match="KAPPAREC_REDIS_URL") as info:
        check_redis(auth_redis, timeout=2.0)
    assert "refused us" in str(info.value) and "KAPPAREC_REDIS_PASSWORD" in str(info.value)
    with pytest.raises(ServiceUnavailable) as info:
        check_redis(auth_redis.replace("redis://", f"redis://:wrong-{PASSWORD}@"), timeout=2.0)
    assert PASSWORD not in str(info.value), "a password leaked into an error message"
    check_redis(auth_redis, timeout=2.0, password=PASSWORD)
    check_redis(auth_redis.replace("redis://", f"redis://:{PASSWORD}@"), timeout=2.0)


def test_worker_publishes_through_redis_auth(
    auth_redis: str, make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    settings = make_settings(
        topic_prefix=f"{namespace}.", redis_url=auth_redis, redis_password=PASSWORD, settle_s=1.0
    )
    ensure_topics(settings.kafka_bootstrap, build_topics(settings).all())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        assert produce(settings, [Interaction("e1", "view", "u1", "i1", T0)], progress=False).ok
        drain(settings, worker)
        r = redis.Redis.from_url(auth_redis, password=PASSWORD)
        try:
            assert r.get(Keys(settings.namespace, settings.version).user("u1")) is not None
        finally:
            r.close()
        assert PASSWORD not in worker.log.read_text(errors="replace")
    finally:
        worker.stop(grace_s=10.0)


def run_worker(settings: Settings, timeout: float = 60.0) -> tuple[int, str, float]:
    """Run `kapparec worker` to its end; return exit code, output and seconds taken."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPAREC_")}
    env |= to_env(settings)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "agents.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_worker_fails_fast_when_kafka_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    closed = f"{HOST}:{free_port()}"
    code, out, took = run_worker(make_settings(kafka_bootstrap=closed))
    assert code == 2, out
    assert "KAPPAREC_KAFKA_BOOTSTRAP" in out and closed in out, out
    assert "Traceback" not in out, out
    assert took < 30, f"took {took:.0f}s to fail"


def test_worker_fails_fast_when_redis_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    closed = f"redis://:{PASSWORD}@{HOST}:{free_port()}/0"
    code, out, took = run_worker(make_settings(redis_url=closed))
    assert code == 2, out
    assert "KAPPAREC_REDIS_URL" in out and "Traceback" not in out, out
    assert PASSWORD not in out, "the password leaked into the error"
    assert took < 30, f"took {took:.0f}s to fail"


def test_worker_fails_fast_when_redis_refuses_the_password(
    auth_redis: str, make_settings: Callable[..., Settings]
) -> None:
    code, out, _ = run_worker(make_settings(redis_url=auth_redis, redis_password="wrong"))
    assert code == 2, out
    assert "KAPPAREC_REDIS_URL" in out and "invalid" in out.lower(), out


def test_the_http_api_reads_through_redis_auth(auth_redis: str) -> None:
    """`kapparec serve` takes the Redis credentials from the settings, as workers do."""

    async def read(api: HttpApi) -> bytes | None:
        try:
            return await api.reads.get("k")
        finally:
            await api.reads.aclose()
            await api.redis.aclose()

    with pytest.raises(ResponseError, match=r"NOAUTH|Authentication"):
        asyncio.run(read(HttpApi(load_settings(redis_url=auth_redis))))
    s = load_settings(redis_url=auth_redis, redis_password=PASSWORD)
    assert asyncio.run(read(HttpApi(s))) is None
