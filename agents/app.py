"""The composition root: one Faust app per version, built from settings.

Agents are thin: take a batch of raw messages, hand it to a handler, acknowledge the
batch only after the handler returned (its dead letters, state, downstream messages
and Redis writes are then durable). A handler that fails after its retries stops the
worker, so the unacknowledged batch is processed again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from redis.exceptions import RedisError

from agents import codecs, faust_batches, faust_fetch, faust_livelock, faust_seek, log_ends
from agents.catalog import IngestCatalog
from agents.catalog_follower import CatalogCopy, CatalogFollower
from agents.dead_letters import DeadLetters
from agents.experiments import Experiments, wire_experiments
from agents.faust_take import take_batches
from agents.ingest import IngestInteractions
from agents.items import AggregateItems, MergeTrending
from agents.kafka_security import faust_credentials
from agents.loop_priority import LoopPriority
from agents.loop_watchdog import LoopWatchdog
from agents.metrics import LOOP_LAG, TABLE_KEYS, WORKER
from agents.publisher import Publisher, connect
from agents.recs_out import RecsOut
from agents.tables import reader
from agents.user_lists import UserLists
from agents.vector_replica import ItemVectorReplica
from streams.experiments import from_settings
from streams.security import redis_options
from streams.settings import Settings
from streams.topics import (
    TABLE_CATALOG,
    TABLE_ITEM_PARTS,
    TABLE_ITEM_TOPS,
    TABLE_ITEMS,
    TABLE_TRENDING,
    TABLE_USERS,
    Topics,
    build_topics,
)

log = logging.getLogger(__name__)
EXIT_HANDLER_FAILED = 70  # EX_SOFTWARE: a supervisor should restart the worker
BATCH_GRACE_S = 5.0  # how long a stop waits for the batch in hand to finish
# Records of the source topics come in batch messages (agents/faust_batches.py) of up to
# SOURCE_CHUNK records. A handler takes batch_size / SOURCE_CHUNK of them at most, or what
# queued while the last call ran (agents/faust_take.py): live traffic comes in small
# fetches, a few records each, and a handler call per fetch would pay its fixed costs
# (one message per item partition, a Redis pipeline, acknowledgement waits) for a
# handful of events; the longer a call takes, the more the next one gathers.
SOURCE_CHUNK = 16


@dataclass
class Runtime:
    """The app and the handlers wired into it (exposed for tests and the CLI)."""

    app: faust.App
    topics: Topics
    publisher: Publisher
    ingest: IngestInteractions
    items: AggregateItems
    catalog: IngestCatalog
    trending: MergeTrending
    dead_letters: DeadLetters
    user_lists: UserLists
    vectors: ItemVectorReplica
    experiments: Experiments | None = None


def _faust_app(settings: Settings) -> faust.App:
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_allow_declare=False,  # every topic is created up front from the registry
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_rebalance_timeout=settings.session_timeout_s,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        # A revocation waits until every event taken (a batch in hand, or buffered by
        # take_events) is acknowledged, i.e. its state, deltas and lists are written:
        # otherwise a batch could write after the partition's new owner recovered it.
        stream_wait_empty=True,
        # No standby copies: a worker's tables hold exactly the partitions it owns, so a
        # refresh recomputes each user once; a new owner recovers from the changelog.
        table_standby_replicas=0,
    )


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _owned(app: faust.App, topic: str) -> set[int]:
    """The partitions of ``topic`` this worker is assigned as their active owner."""
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def build_app(settings: Settings) -> Runtime:
    """Wire topics, tables, handlers and agents of one version."""
    codecs.register()
    faust_seek.install()
    faust_livelock.install()
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = _faust_app(settings)
    log_ends.install(app, lambda: log_ends.plain_consumer(settings, f"{settings.app_id}-ends"))
    faust_fetch.install(app, settings.fetch_max_wait_ms)
    topics = build_topics(settings)
    faust_batches.install(
        app,
        [t.name for t in topics.sources()],
        SOURCE_CHUNK,
    )
    n = settings.partitions

    def table(name: str, value: str, partitions: int = n) -> Any:
        schema = faust.Schema(key_serializer=codecs.STR, value_serializer=value)
        t = app.Table(name, schema=schema, partitions=partitions)
        # Faust derives a table's own serializers from key_type/value_type, not from the
        # schema, and registering the table already built its changelog topic with them.
        # Set ours and drop that topic: it is rebuilt on first use, before recovery starts.
        t.key_serializer, t.value_serializer = codecs.STR, value
        t._changelog_topic = None
        return t

    users = table(TABLE_USERS, codecs.USER_STATE)
    items = table(TABLE_ITEMS, codecs.ITEM_STATE)
    parts = table(TABLE_ITEM_PARTS, codecs.PARTITION_STATE)
    tops = table(TABLE_ITEM_TOPS, codecs.TOPS)
    # Not a Faust table: every worker holds all of it, kept whole by its follower.
    catalog = CatalogCopy(app, settings)
    partials = table(TABLE_TRENDING, codecs.ORJSON, partitions=1)

    publisher = Publisher(connect(settings.redis_url, **redis_options(settings)), settings)
    dead_letters = DeadLetters(
        app, {s.name: s.dead_letter for s in topics.sources() if s.dead_letter}
    )
    recs_out = RecsOut(app, topics.recs_out.name)
    # Users' new events first: background work steps aside for them (loop_priority.py).
    priority = LoopPriority()
    user_lists = UserLists(
        publisher,
        settings,
        reader(catalog),
        experiment=from_settings(settings),
        on_write=recs_out.send_all if settings.recs_out else None,
        priority=priority,
    )
    item_deltas = _raw_topic(app, topics.item_deltas.name)
    trending_topic = _raw_topic(app, topics.trending_partials.name)
    follower = CatalogFollower(settings, catalog)
    rt = Runtime(
        app=app,
        topics=topics,
        publisher=publisher,
        ingest=IngestInteractions(
            settings,
            users,
            item_deltas,
            dead_letters,
            user_lists,
            trending_topic,
            catalog_synced=follower.synced,
            owned=lambda: _owned(app, topics.interactions.name),
        ),
        items=AggregateItems(
            settings, items, parts, tops, catalog, trending_topic, publisher, priority
        ),
        catalog=IngestCatalog(
            settings,
            catalog,
            dead_letters,
            publisher,
            item_deltas,
            _raw_topic(app, topics.item_vectors.name),
            catalog_synced=follower.synced,
            rebalances=lambda: app.rebalancing_count,
        ),
        trending=MergeTrending(
            settings,
            partials,
            catalog,
            publisher,
            catalog_synced=follower.synced,
            priority=priority,
        ),
        dead_letters=dead_letters,
        user_lists=user_lists,
        vectors=ItemVectorReplica(
            app, settings, topics, publisher, catalog, catalog_ready=follower.caught_up
        ),
    )
    within = settings.batch_within_s
    source_batches = source_messages(settings)
    _batch_agent(
        app,
        _raw_topic(app, topics.interactions.name),
        "ingest_interactions",
        _urgent(priority, rt.ingest.handle),
        source_batches,
        within,
        follower.caught_up,
        priority,
    )
    item_within = max(within, settings.item_flush_s)
    # The item side's window is what writes a busy item once per item_flush_s.
    _batch_agent(
        app,
        item_deltas,
        "aggregate_items",
        rt.items.handle,
        512,
        item_within,
        follower.caught_up,
        window=True,
    )
    _batch_agent(
        app,
        _raw_topic(app, topics.catalog.name),
        "ingest_catalog",
        rt.catalog.handle_batch,
        source_batches,
        within,
        follower.caught_up,
    )
    # Partials are merged one by one, so waiting to gather more coalesces nothing: the
    # item side's window already bounds how often they come.
    _batch_agent(
        app,
        trending_topic,
        "merge_trending",
        _each(rt.trending.handle),
        256,
        within,
        follower.caught_up,
    )

    if settings.split:
        # A second reader of interactions (and the only one of impressions): it costs a
        # Faust pass per event, so it runs only while an A/B test is set up.
        rt.experiments = wire_experiments(app, settings, topics, publisher, dead_letters, table)

    @app.task
    async def follow_catalog() -> None:
        # Every worker applies the other workers' catalogue writes (agents/catalog_follower.py).
        await _guard(app, "follow_catalog", follower.run)

    @app.task
    async def replicate_item_vectors() -> None:
        # Every worker replays the whole item-vectors topic (see agents/vector_replica.py).
        await _guard(app, "replicate_item_vectors", rt.vectors.run)

    if settings.loop_stall_ms:
        watchdog = LoopWatchdog(
            settings.loop_stall_ms / 1000, lambda lag_s: WORKER.observe(LOOP_LAG, lag_s)
        )

        @app.task
        async def watch_event_loop() -> None:
            await watchdog.run()

    @app.timer(settings.flush_interval_s)
    async def settle_user_lists() -> None:
        # Not while partitions move: until this worker's recovery ends, its store still
        # holds the users of partitions it lost, whose new owner writes their lists.
        if not app.rebalancing:
            await _guard(app, "settle_user_lists", user_lists.settle, reader(users))

    # Worker-side figures reach the HTTP API's /metrics through Redis (see agents/metrics.py).
    WORKER.bind(settings.namespace, settings.version, settings.worker_id)

    @app.timer(settings.metrics_flush_s)
    async def flush_metrics() -> None:
        for name, t in ((TABLE_USERS, users), (TABLE_ITEMS, items), (TABLE_CATALOG, catalog)):
            WORKER.gauge(TABLE_KEYS, len(t.data), name)
        try:
            await WORKER.flush(publisher.redis, max(10, int(settings.metrics_flush_s * 10)))
        except RedisError as exc:  # the deltas stay pending; lists matter more than counts
            log.warning("metrics flush failed, retrying next interval: %s", exc)

    meta = orjson.dumps({"app_id": settings.app_id, "started_at": int(time.time() * 1000)})
    meta_write = [(publisher.keys.meta(), meta, settings.version_ttl_s)]

    @app.task
    async def announce_version() -> None:
        await publisher.write(meta_write)
        if await publisher.activate_if_unset(settings.version):
            log.warning("no active version yet: %s is now active", settings.app_id)

    # `promote` takes the meta record as proof that a version runs: a version whose
    # workers run for longer than its TTL must not look as if it never ran.
    @app.timer(meta_renewal_s(settings))
    async def renew_version() -> None:
        try:
            await publisher.write(meta_write)
        except RedisError as exc:
            log.warning(
                "could not renew %s, retrying next interval: %s", publisher.keys.meta(), exc
            )

    return rt


def meta_renewal_s(settings: Settings) -> float:
    """How often a worker rewrites its version's meta record: eight times per TTL."""
    return max(1.0, settings.version_ttl_s / 8)


def source_messages(settings: Settings) -> int:
    """How many batch messages of a source topic one handler call takes."""
    return max(1, settings.batch_size // SOURCE_CHUNK)


def _urgent(
    priority: LoopPriority, handle: Callable[[Sequence[Any]], Awaitable[None]]
) -> Callable[[Sequence[Any]], Awaitable[None]]:
    async def run(events: Sequence[Any]) -> None:
        async with priority.urgent():
            await handle(events)

    return run


def _each(handle: Callable[[Any], Awaitable[None]]) -> Callable[[Sequence[Any]], Awaitable[None]]:
    async def run(events: Sequence[Any]) -> None:
        for event in events:
            await handle(event)

    return run


def _batch_agent(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    handle: Callable[[Sequence[Any]], Awaitable[None]],
    size: int,
    within: float,
    ready: asyncio.Event | None = None,
    priority: LoopPriority | None = None,
    window: bool = False,
) -> None:
    """Run ``handle`` on batches of ``topic``: at most ``size`` events, handed out as soon
    as the agent is free, gathered for at most ``within``; with ``window``, every
    ``within`` (or ``size`` events). See agents/faust_take.py."""

    async def agent(stream: faust.StreamT) -> None:
        if priority is not None:  # its queued input goes before background work
            priority.watch(name, stream.channel.queue.qsize)
        # A batch is acknowledged when the next one is requested, i.e. after handle()
        # returned; a failing handle() never returns (see _guard). The batching also
        # acknowledges the batch in its cleanup when the agent is cancelled (a graceful
        # stop), so a batch must not be cut short: see _finish. Waiting for ``ready``
        # happens before the first batch is taken, so a stop meanwhile acknowledges nothing.
        if ready is not None and not ready.is_set():
            log.info("%s: waiting for the catalogue copy to catch up", name)
            await ready.wait()  # agents/catalog_follower.py
        async for events in take_batches(stream, size, within, window):
            await _finish(app, name, _guard(app, name, handle, events))

    agent.__name__ = name
    app.agent(topic, name=name)(agent)


async def _finish(app: faust.App, name: str, work: Awaitable[Any]) -> None:
    """Run one batch to its end even if the agent is cancelled meanwhile.

    A stop cancels the agent; the cleanup of ``take_events`` then acknowledges the batch
    in hand, whose offsets are committed on the way out. Half a batch done (item deltas
    sent, user state not yet written) would be lost for good. So the batch runs on,
    shielded from the cancellation, and the cancellation goes on once it is done; if it
    cannot finish within the shutdown grace period the worker exits hard, leaving the
    offsets uncommitted, and the batch is redone after restart.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), BATCH_GRACE_S)
        except BaseException:
            log.critical("%s: batch cut short by a stop; exiting so it is redone", name)
            logging.shutdown()
            os._exit(EXIT_HANDLER_FAILED)
        raise


async def _guard(app: faust.App, name: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run ``fn``; on failure exit at once, so the batch is never acknowledged.

    A graceful stop would run the stream's cleanup, which acknowledges the batch and
    lets its offsets be committed: the work would be skipped, not redone. Exiting
    hard leaves the offsets where they were; the restarted worker redoes the batch,
    and the per-user and per-item offset checks make that redo idempotent.
    """
    try:
        return await fn(*args)
    except Exception:
        log.critical("%s failed; exiting so the batch is redone after restart", name, exc_info=True)
        logging.shutdown()
        os._exit(EXIT_HANDLER_FAILED)
