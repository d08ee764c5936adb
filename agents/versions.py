"""Versions: reprocess the log into a new version beside the live one, then switch readers.

A version has its own consumer group, tables (changelog topics) and Redis namespace, so
replaying it from the start of the log does not disturb the version being served.
Promotion moves the pointer key in one SET; the old version's keys are then given a
TTL and age out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis
from confluent_kafka import Consumer, TopicPartition
from tqdm import tqdm

from agents.admin import TopicError, delete_group, delete_topics, ensure_topics
from agents.control import request_refresh
from agents.lag import log_ends, wait_past_now
from agents.redis_scan import each_key
from infra.workers import WorkerProcess
from schemas.errors import KapparecError
from streams.security import librdkafka_security, redis_options
from streams.serving import ITEM_META, POPULAR, SIMILAR, TRENDING, USER, Keys
from streams.settings import Settings, require
from streams.timeindex import first_offset_at
from streams.topics import build_topics
from streams.user_state import BOUGHT, VIEWED


class VersionError(KapparecError):
    """A version is missing or not ready to be promoted."""


def parse_start(raw: str) -> int | None:
    """``earliest`` -> None; epoch milliseconds or an ISO 8601 time -> epoch milliseconds."""
    text = raw.strip()
    if text.lower() == "earliest":
        return None
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{raw!r} is neither 'earliest', epoch ms nor an ISO 8601 time", param_hint="--from"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def start_at(settings: Settings, start_ms: int) -> dict[str, int]:
    """Commit, for a version that never ran, the offsets of ``start_ms`` on its sources.

    Interactions and impressions start at the first record whose timestamp is at or
    after ``start_ms`` (the log end when there is none); the catalogue keeps its start,
    because every item's metadata is needed whatever the window. Returns the offsets
    committed, per topic; refuses a version whose group already committed offsets.
    """
    topics = build_topics(settings)
    specs = [topics.interactions, topics.impressions]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            **librdkafka_security(settings),
            "group.id": settings.app_id,
            "enable.auto.commit": False,
        }
    )
    try:
        tps = [TopicPartition(t.name, p) for t in specs for p in range(t.partitions)]
        committed = consumer.committed(tps, timeout=10)
        if any(tp.offset >= 0 for tp in committed):
            raise VersionError(f"v{settings.version} has run before; --from applies to a new one")
        offsets = [
            TopicPartition(tp.topic, tp.partition, _offset_at(consumer, tp, start_ms)) for tp in tps
        ]
        consumer.commit(offsets=offsets, asynchronous=False)
        per_topic: dict[str, int] = {}
        for tp in offsets:
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + tp.offset
        return per_topic
    finally:
        consumer.close()


def _offset_at(consumer: Consumer, tp: TopicPartition, start_ms: int) -> int:
    """First offset of ``tp`` stamped at or after ``start_ms`` (the end when none is).

    The broker's time index is asked first and its answer checked against the records
    on either side; a broker without a working time index (the embedded one answers 0)
    is searched record by record instead (:func:`first_offset_at`).
    """
    low, high = consumer.get_watermark_offsets(tp, timeout=10)
    high = log_ends(consumer, {(tp.topic, tp.partition): high})[(tp.topic, tp.partition)]

    def ts_of(offset: int) -> int:
        consumer.assign([TopicPartition(tp.topic, tp.partition, offset)])
        try:
            for _ in range(20):
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    return int(msg.timestamp()[1])
        finally:
            consumer.unassign()
        raise VersionError(f"cannot read {tp.topic}[{tp.partition}] at offset {offset}")

    found = consumer.offsets_for_times(
        [TopicPartition(tp.topic, tp.partition, start_ms)], timeout=10
    )[0].offset
    found = high if found < 0 else found
    at_or_after = found >= high or ts_of(found) >= start_ms
    before = found <= low or ts_of(found - 1) < start_ms
    if at_or_after and before:
        return int(found)
    return first_offset_at(ts_of, low, high, start_ms)


def replay(
    settings: Settings,
    timeout: float = 3600.0,
    start_ms: int | None = None,
    workers: int = 1,
) -> None:
    """Run ``workers`` workers of ``settings.version`` from the start of the log until caught up.

    With ``start_ms``, interactions are read from that event time on (see :func:`start_at`).
    The workers share one consumer group, so each replays its share of the partitions
    (at most one worker per partition does work).

    Shows the remaining lag; when drained, recomputes every list (a refresh), so the new
    namespace holds exactly what the log implies. The workers are stopped afterwards:
    deploy workers of the new version to keep it current before promoting.
    """
    require(settings, "kafka_bootstrap", "redis_url")
    if workers < 1:
        raise VersionError(f"--workers must be at least 1, not {workers}")
    # The progress check reads the version's internal topics before its worker is up.
    ensure_topics(
        settings.kafka_bootstrap,
        build_topics(settings).all(),
        security=librdkafka_security(settings),
    )
    if start_ms is not None:
        skipped = start_at(settings, start_ms)
        click.echo(f"starting at {start_ms} ms: skipping {skipped} records per topic")
    # Nobody reads the new namespace before the refresh below builds every list.
    quiet = dataclasses.replace(settings, lists_on_refresh=True)
    state = Path(settings.state_dir)
    if workers > settings.partitions:
        click.echo(
            f"--workers {workers} is more than KAPPAREC_PARTITIONS={settings.partitions}; "
            f"starting {settings.partitions} (a partition is read by one worker at a time)"
        )
        workers = settings.partitions
    pool: list[WorkerProcess] = []
    try:
        for i in range(1, workers + 1):
            pool.append(
                WorkerProcess(
                    quiet,
                    state / f"replay-v{settings.version}-{i}.log",
                    worker_id=f"replay{settings.version}-{i}",
                )
            )
        total = None
        with tqdm(desc=f"replaying into v{settings.version}", unit="msg") as bar:

            def progress(lag: dict[str, int]) -> None:
                nonlocal total
                for worker in pool:
                    if not worker.alive:
                        raise VersionError(f"replay worker exited:\n{worker.tail()}")
                left = sum(lag.values())
                if total is None or left > total:
                    total = bar.total = left
                bar.n = total - left
                bar.refresh()

            # Past the log as it is now, not to zero lag: the live version's traffic
            # keeps coming, and this version's lag would never read zero.
            wait_past_now(settings, timeout, on_poll=progress)
            request_refresh(settings)
            wait_past_now(settings, timeout, on_poll=progress)
    finally:
        # Reported, not raised: an error that ended the replay stays the one shown.
        unstopped = stop_all(pool)
        for problem in unstopped:
            click.echo(f"replay worker did not stop: {problem}", err=True)
    if unstopped:
        raise VersionError(f"{len(unstopped)} replay worker(s) did not stop; see above")
    click.echo(f"v{settings.version} caught up; promote with `kapparec promote {settings.version}`")


def stop_all(pool: Sequence[WorkerProcess], grace_s: float = 15.0) -> list[str]:
    """Stop every worker of ``pool``; returns what went wrong, one line per worker.

    All are asked at once, then each is waited for: one by one, N workers would take up
    to N grace periods, and a worker that failed to stop would leave the rest running.
    """
    for worker in pool:
        worker.signal_stop()
    errors = []
    for worker in pool:
        try:
            worker.stop(grace_s)
        except Exception as exc:  # stop the others, then report
            errors.append(f"{worker.log}: {exc}")
    return errors


PROMOTE_WAIT_S = 30.0  # how long promote waits for a version that is a little behind


def promote(settings: Settings, version: int, force: bool = False) -> int | None:
    """Point readers at ``version``; the previous version's keys expire after a TTL."""
    require(settings, "redis_url")
    r = redis.Redis.from_url(settings.redis_url, **redis_options(settings))
    new = Keys(settings.namespace, version)
    if not r.exists(new.meta()):
        raise VersionError(f"version {version} has never run: {new.meta()} is missing")
    if not force and settings.kafka_bootstrap:
        # Under live traffic the lag is never zero: what counts is whether the version's
        # workers get through the log as it is now, within a short wait.
        try:
            wait_past_now(dataclasses.replace(settings, version=version), PROMOTE_WAIT_S)
        except TimeoutError as exc:
            raise VersionError(
                f"version {version} did not get through the log within "
                f"{PROMOTE_WAIT_S:.0f} s ({exc}); wait or --force"
            ) from None
    old_raw = r.getset(new.active, str(version))
    old = int(old_raw) if old_raw is not None else None
    if old != version:
        _keep_records(r, new, settings)
    if old is not None and old != version:
        expired = _expire_version(r, Keys(settings.namespace, old), settings.version_ttl_s)
        click.echo(f"v{old}: {expired} keys expire in {settings.version_ttl_s}s")
        click.echo(f"stop v{old}'s workers: while they run they rewrite its keys")
    return old


def retire(
    settings: Settings, version: int, topics: bool = False
) -> tuple[int, list[str], str | None]:
    """Let ``version`` go: its Redis keys expire; with ``topics`` its topics and its
    consumer group are deleted.

    For a replayed version that will not be promoted, or a replaced one whose topics are
    no longer wanted (a promotion already gave its keys a TTL). The live version is
    refused. Only the version's own topics go (changelogs, item deltas, trending
    partials, item vectors, experiment outcomes); the source topics are the log every
    version reads. The group goes with them, so that a later replay under the same
    number starts from the beginning of the log, not from the old offsets. Kafka refuses
    to delete a group while the version's workers are in it; the embedded broker does
    not, so stop them first. Returns the number of keys given a
    TTL, the topics deleted and the group deleted (``None`` if none was).
    """
    require(settings, "redis_url")
    own = dataclasses.replace(settings, version=version)
    r = redis.Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        keys = Keys(settings.namespace, version)
        live = r.get(keys.active)
        if live is not None and int(live) == version:
            raise VersionError(
                f"version {version} is the live one ({keys.active}); promote another first"
            )
        group = None
        if topics:
            require(settings, "kafka_bootstrap")
            try:
                if delete_group(
                    settings.kafka_bootstrap, own.app_id, security=librdkafka_security(settings)
                ):
                    group = own.app_id
            except TopicError as exc:
                raise VersionError(f"{exc}; stop the workers of version {version} first") from None
        expired = _expire_version(r, keys, settings.version_ttl_s)
    finally:
        r.close()
    deleted: list[str] = []
    if topics:
        deleted = delete_topics(
            settings.kafka_bootstrap,
            [t.name for t in build_topics(own).all() if t.internal],
            security=librdkafka_security(settings),
        )
    return expired, deleted, group


def _keep_records(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    """Undo what retiring did to a version promoted again (a rollback, or one retired
    and then promoted): it cut every key's TTL to ``version_ttl_s``.

    The catalogue records (no TTL of their own), the A/B report and the alerts (written
    only when a new report or alert comes) lose the TTL. The lists get their own TTL
    back (``user_ttl_s``, ``item_ttl_s``), counted from now: a quiet user's list would
    otherwise go after ``version_ttl_s``, not ``user_ttl_s``. A TTL is lengthened,
    never shortened. Worker gauges and the meta record keep theirs.
    """
    extend = r.register_script(_EXPIRE_LATER)
    ttls = {USER: settings.user_ttl_s}
    ttls |= dict.fromkeys((BOUGHT, VIEWED, SIMILAR, TRENDING, POPULAR), settings.item_ttl_s)

    def restore(pipe: Any, key: bytes) -> None:
        try:
            kind, _ = keys.parse(key.decode())
        except (UnicodeDecodeError, ValueError):
            return  # not a list or a catalogue record (gauges, the A/B report, ...)
        if kind == ITEM_META:
            pipe.persist(key)
        elif kind in ttls:
            extend(keys=[key], args=[ttls[kind]], client=pipe)

    each_key(r, keys.prefix + "*", restore)
    r.persist(keys.metrics_ab())
    r.persist(keys.alerts())


# EXPIRE unless the key is due sooner: what EXPIRE ... LT does on Redis 7, also on the
# Redis 6.2 that the embedded stack may run.
_EXPIRE_SOONER = """
local left = redis.call('TTL', KEYS[1])
if left == -1 or left > tonumber(ARGV[1]) then
    return redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""


# The other way round: EXPIRE ... GT, for a key that has a TTL (one without keeps none).
_EXPIRE_LATER = """
local left = redis.call('TTL', KEYS[1])
if left >= 0 and left < tonumber(ARGV[1]) then
    return redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""


def _expire_version(r: redis.Redis, keys: Keys, ttl: int) -> int:
    """Give every key of ``keys``' version ``ttl``; a key due sooner keeps its time."""
    expire = r.register_script(_EXPIRE_SOONER)
    return each_key(
        r, keys.prefix + "*", lambda pipe, key: expire(keys=[key], args=[ttl], client=pipe)
    )
