"""Versions: reprocess the log into a new version beside the live one, then switch readers.

A version has its own consumer group, tables (changelog topics) and Redis namespace, so
replaying it from the start of the log does not disturb the version being served.
Promotion moves the pointer key in one SET; the old version's keys are then given a
TTL and age out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import redis
from tqdm import tqdm

from agents.control import request_refresh
from agents.lag import consumer_lag, input_topics, wait_caught_up
from infra.workers import WorkerProcess
from schemas.errors import KapparecError
from streams.security import librdkafka_security, redis_options
from streams.serving import Keys
from streams.settings import Settings, require


class VersionError(KapparecError):
    """A version is missing or not ready to be promoted."""


def replay(settings: Settings, timeout: float = 3600.0) -> None:
    """Run a worker of ``settings.version`` from the start of the log until it has caught up.

    Shows the remaining lag; when drained, recomputes every list (a refresh), so the new
    namespace holds exactly what the log implies. The worker is stopped afterwards:
    deploy workers of the new version to keep it current before promoting.
    """
    require(settings, "kafka_bootstrap", "redis_url")
    log = Path(settings.state_dir) / f"replay-v{settings.version}.log"
    worker = WorkerProcess(settings, log, worker_id=f"replay{settings.version}")
    try:
        total = None
        with tqdm(desc=f"replaying into v{settings.version}", unit="msg") as bar:

            def progress(lag: dict[str, int]) -> None:
                nonlocal total
                if not worker.alive:
                    raise VersionError(f"replay worker exited:\n{worker.tail()}")
                left = sum(lag.values())
                if total is None or left > total:
                    total = bar.total = left
                bar.n = total - left
                bar.refresh()

            wait_caught_up(settings, timeout, on_poll=progress)
            request_refresh(settings)
            wait_caught_up(settings, timeout, on_poll=progress)
    finally:
        worker.stop()
    click.echo(f"v{settings.version} caught up; promote with `kapparec promote {settings.version}`")


def promote(settings: Settings, version: int, force: bool = False) -> int | None:
    """Point readers at ``version``; the previous version's keys expire after a TTL."""
    require(settings, "redis_url")
    r = redis.Redis.from_url(settings.redis_url, **redis_options(settings))
    new = Keys(settings.namespace, version)
    if not r.exists(new.meta()):
        raise VersionError(f"version {version} has never run: {new.meta()} is missing")
    if not force and settings.kafka_bootstrap:
        probe = dataclasses.replace(settings, version=version)
        behind = sum(
            consumer_lag(
                settings.kafka_bootstrap,
                probe.app_id,
                input_topics(probe),
                security=librdkafka_security(settings),
            ).values()
        )
        if behind:
            raise VersionError(f"version {version} is {behind} messages behind; wait or --force")
    old_raw = r.getset(new.active, str(version))
    old = int(old_raw) if old_raw is not None else None
    if old is not None and old != version:
        expired = _expire_version(r, Keys(settings.namespace, old), settings.version_ttl_s)
        click.echo(f"v{old}: {expired} keys expire in {settings.version_ttl_s}s")
    return old


def _expire_version(r: redis.Redis, keys: Keys, ttl: int) -> int:
    n = 0
    pipe = r.pipeline(transaction=False)
    for key in r.scan_iter(match=keys.prefix + "*", count=1000):
        pipe.expire(key, ttl)
        n += 1
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
    return n
