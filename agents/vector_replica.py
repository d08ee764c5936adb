"""Every worker's HNSW replica of all item vectors, and the similar-items lists it publishes.

Why a plain aiokafka consumer with no group, assigned to every partition of the
item-vectors topic, run as an ``app.task``:

- Each worker needs *all* the vectors (an ANN query may return any item); a consumer
  group, Faust's included, would split the partitions among the workers.
- A Faust ``GlobalTable`` would also give every worker everything, but through table
  recovery: the worker's agents wait until the whole topic is replayed, writes have to go
  through the table (the catalogue agent writes plain records; the item side will too),
  there is no "these keys changed" hook to mark lists stale, and every vector would be
  held twice (table and graph).
- Nothing is committed: the replica is rebuilt from the earliest offset at every start.
  The topic is compacted (one record per item), the graph is never checkpointed, and a
  rebalance of the worker's group never touches the replica.

Threads: the replica lives on one executor thread. Apply, flush (growth and build-aside
rebuilds included) and queries all run there, so the event loop (agents, heartbeats)
never waits for the graph, and nothing is written while a query runs (a single thread,
and ``VectorIndex``'s lock for any other reader).

Lists: a worker writes the similar-items lists of the items of the catalogue partitions
it owns (an item's vector is written on the partition of its catalogue record), so each
list has one writer. Stale lists (changed items and their neighbours) are written once
the records pause, or after a second while they keep coming (``StaleLists``): during a
bulk load of the catalogue, each flush would otherwise recompute nearly every list.
After catching up, and whenever the worker gains partitions, it writes every list of the
partitions gained and removes those of their deleted items; so a restart or a rebalance
republishes what a crashed worker may have left half done. Lists are filtered with the
worker's catalogue copy: they wait for it to catch up, and for the catalogue record each
new vector came from (``CopyWait``: at most 5 s, then the lists written meanwhile are
written again once the copy holds those records). Every list is rewritten a few times per TTL
(``Renewal``), so one that nothing changes does not expire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.log_ends import fetched_ends, plain_consumer
from agents.metrics import ANN, TABLE_KEYS, WORKER
from agents.publisher import Publisher
from agents.tables import entries, reader
from streams.models.replica import (
    INDEX,
    Neighbours,
    ReplicaParams,
    StaleLists,
    VectorReplica,
    decode_value,
)
from streams.models.vectors import VectorParams, VectorRecord
from streams.partitioning import partition_for
from streams.recommend import first_available
from streams.serving import encode_list
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_MS = 200  # how long a poll waits; also the granularity of the flush timer
CATALOG_SLICE = 50_000  # catalogue records read per turn of the event loop
RENEWALS_PER_TTL = 4  # lists are rewritten this many times per KAPPAREC_ITEM_TTL_S
MIN_RENEWAL_S = 60.0
MAX_RECORDS = 5_000
PUBLISH_CHUNK = 500  # lists per query round and Redis pipeline
SPARE = 10  # extra neighbours asked for, so that out-of-stock ones can be dropped
GAUGE = "item_vectors"  # label of the replica size in kapparec_table_keys


def now_ms() -> int:
    """Wall-clock milliseconds: the replica flushes on the clock, not on event time."""
    return int(time.time() * 1000)


def replica_params(settings: Settings) -> ReplicaParams:
    """A worker's replica: lists of ``similar_list_size``, the index calibrated on queries
    shaped like theirs (``similar_list_size + SPARE`` neighbours)."""
    k = settings.similar_list_size
    return ReplicaParams(index=dataclasses.replace(INDEX, calibrate_k=k + SPARE), list_size=k)


class ItemVectorReplica:
    """Replays the item-vectors topic into a :class:`VectorReplica`; publishes similar lists."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        topics: Topics,
        publisher: Publisher,
        catalog: Any,  # agents.catalog_follower.CatalogCopy: every worker holds all of it
        catalog_ready: asyncio.Event | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.topic = topics.item_vectors
        self.catalog_topic = topics.catalog.name
        self.publisher = publisher
        self.catalog = catalog
        self._catalog_get = reader(catalog)
        self.dim = VectorParams().dim
        self.replica = VectorReplica(replica_params(settings))
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="item-vectors")
        self.caught_up = False
        self.bad_records = 0
        # Set once the worker's catalogue copy has caught up: lists are filtered with it.
        self.catalog_ready = catalog_ready
        self.renewal = Renewal(max(MIN_RENEWAL_S, settings.item_ttl_s / RENEWALS_PER_TTL))

    async def run(self) -> None:
        """Replay from the earliest offset, then follow the topic until the worker stops."""
        consumer = plain_consumer(self.settings, f"{self.settings.app_id}-item-vectors")
        await consumer.start()
        try:
            await self._follow(consumer)
        finally:
            await consumer.stop()
            self.pool.shutdown(wait=False)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        tps = [TopicPartition(self.topic.name, p) for p in range(self.topic.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await fetched_ends(
            lambda: plain_consumer(self.settings, f"{self.settings.app_id}-item-vectors-end"),
            await consumer.end_offsets(tps),
        )
        behind = {tp: end for tp, end in ends.items() if end > 0}
        started = time.monotonic()
        owned: set[int] = set()
        waiting = StaleLists()
        copy = CopyWait()
        deleted: set[str] = set()  # tombstones met while catching up
        while True:
            polled = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            records = self._decode(m for batch in polled.values() for m in batch)
            stale = await self._run(self.replica.step, records, now_ms(), self.caught_up)
            if behind:
                deleted.update(r.item_id for r, _ in records if r.vector is None)
                for tp in list(behind):
                    if await consumer.position(tp) >= behind[tp]:
                        del behind[tp]
                if behind:
                    continue
                await self._run(self.replica.flush, now_ms())
                log.info(
                    "item-vector replica caught up: %d items in %.1fs",
                    len(self.replica),
                    time.monotonic() - started,
                )
                if self.catalog_ready is not None and not self.catalog_ready.is_set():
                    log.info("item-vector replica: waiting for the catalogue copy to catch up")
                    await self.catalog_ready.wait()
                self.renewal.restart(time.monotonic())
            else:
                copy.expect(records)
            self.caught_up = True
            WORKER.gauge(TABLE_KEYS, len(self.replica), GAUGE)
            index = self.replica.index
            if index.recall is not None:
                WORKER.gauge(ANN, index.ef, "ef")
                WORKER.gauge(ANN, index.recall, "recall")
            now_owned = self._owned()
            gained, owned = now_owned - owned, now_owned
            if gained:
                # Every list of the partitions gained, and the removal of those of items
                # deleted meanwhile: a worker that died may have left them half done, and
                # a tombstone compacted away leaves only the catalogue record to tell.
                stale |= set(await self._run(self.replica.items, self._in(gained)))
                gone = deleted | await self._deleted_in_catalog()
                stale |= await self._run(self._absent, gone)
                deleted.clear()
            # Lists are written with a TTL: each is rewritten well within it, a slice at a
            # time, even if nothing about it changed (and Redis refilled if it was emptied).
            if self.renewal.round_due(time.monotonic()):
                self.renewal.begin(
                    time.monotonic(), await self._run(self.replica.items, self._in(owned))
                )
            stale.update(self.renewal.take(time.monotonic()))
            stale.update(copy.settled(self._catalog_get))
            waiting.add(stale, time.monotonic())
            if waiting.due(time.monotonic(), idle=not records) and copy.ready(
                self._catalog_get, time.monotonic()
            ):
                began = time.monotonic()
                n = self.topic.partitions
                items = sorted(i for i in waiting.take() if partition_for(i, n) in owned)
                await self.publish(items)
                copy.written(items)
                waiting.took(time.monotonic() - began)

    async def publish(self, items: Sequence[str]) -> None:
        """Write the similar-items lists of ``items``; remove those of deleted items."""
        k = self.settings.similar_list_size
        for start in range(0, len(items), PUBLISH_CHUNK):
            chunk = items[start : start + PUBLISH_CHUNK]
            found = await self._run(self.replica.lists, chunk, k + SPARE)
            writes, gone = self._encode(found, k)
            await self.publisher.write(writes)
            await self.publisher.delete(gone)

    def _encode(
        self, found: dict[str, Neighbours | None], k: int
    ) -> tuple[list[tuple[str, bytes, int]], list[str]]:
        keys, ttl = self.publisher.keys, self.settings.item_ttl_s
        computed, newest = now_ms(), self.replica.newest_ts
        writes, gone = [], []
        for item, neighbours in found.items():
            if neighbours is None:
                gone.append(keys.similar(item))
                continue
            rows = first_available(neighbours, self._catalog_get, k)
            writes.append((keys.similar(item), encode_list(rows, computed, newest), ttl))
        return writes, gone

    def _decode(self, messages: Iterable[Any]) -> list[tuple[VectorRecord, int]]:
        out = []
        for m in messages:
            try:
                item_id = m.key.decode()
                out.append((decode_value(item_id, m.value, self.dim), m.timestamp))
            except (AttributeError, UnicodeDecodeError, ValueError) as exc:
                # Written only by this application: a bad record is a bug, not input. It
                # is skipped (the replica keeps the item's previous vector) and logged.
                self.bad_records += 1
                log.error("item-vectors %s/%s@%s skipped: %s", m.topic, m.partition, m.offset, exc)
        return out

    async def _deleted_in_catalog(self) -> set[str]:
        """Items the catalogue copy holds as deleted.

        The copy is written on the event loop, so it is read there, in slices with a turn
        of the loop between them: a whole catalogue is millions of records.
        """
        records = entries(self.catalog)
        keys, found = list(records), set()
        for start in range(0, len(keys), CATALOG_SLICE):
            for item in keys[start : start + CATALOG_SLICE]:
                meta = records.get(item)
                if meta and meta.get("deleted"):
                    found.add(item)
            await asyncio.sleep(0)
        return found

    def _absent(self, items: set[str]) -> set[str]:
        """Those of ``items`` the replica does not hold (run on the replica's thread)."""
        return {i for i in items if i not in self.replica.index}

    def _owned(self) -> set[int]:
        actives = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.catalog_topic}

    def _in(self, partitions: set[int]) -> Callable[[str], bool]:
        n = self.topic.partitions
        return lambda item: partition_for(item, n) in partitions

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args))


@dataclasses.dataclass
class Renewal:
    """Rewrites every owned list once per ``period_s``: a round starts a period after
    the last, and hands its lists out in slices spread over half a period."""

    period_s: float
    queue: list[str] = dataclasses.field(default_factory=list)
    total: int = 0
    started: float = 0.0

    def restart(self, now: float) -> None:
        """Every list was just written: the next round starts a period from ``now``."""
        self.queue, self.total, self.started = [], 0, now

    def round_due(self, now: float) -> bool:
        """Whether a new round should begin (the last one handed everything out)."""
        return not self.queue and now - self.started >= self.period_s

    def begin(self, now: float, items: list[str]) -> None:
        """Start a round over ``items``."""
        self.queue, self.total, self.started = list(items), len(items), now

    def take(self, now: float) -> list[str]:
        """The lists of the round due by ``now`` and not handed out yet."""
        spread = self.period_s / 2
        elapsed = now - self.started
        due = self.total if elapsed >= spread else int(self.total * elapsed / spread)
        n = len(self.queue) - (self.total - due)
        if n <= 0:
            return []
        out, self.queue = self.queue[-n:], self.queue[:-n]
        return out


@dataclasses.dataclass
class CopyWait:
    """Holds publication back until the catalogue copy holds the catalogue record each
    vector record came from (its timestamp is the record's ``ts``), at most ``max_s``.

    The vector and the record travel on two topics, read by two consumers: a list
    computed between the two would be filtered with the item's previous availability,
    and nothing would rewrite it when the record arrives. When the wait gives up, the
    records still missing are remembered (``late``) with every list written meanwhile
    (``owed``); once the copy holds them all, :meth:`settled` hands those lists back to
    be written again.
    """

    max_s: float = 5.0
    expected: dict[str, int] = dataclasses.field(default_factory=dict)
    since: float | None = None
    late: dict[str, int] = dataclasses.field(default_factory=dict)
    owed: set[str] = dataclasses.field(default_factory=set)

    def expect(self, records: Sequence[tuple[VectorRecord, int]]) -> None:
        for record, ts in records:
            self.expected[record.item_id] = max(ts, self.expected.get(record.item_id, 0))

    def ready(self, catalog_get: Callable[[str], Any], now: float) -> bool:
        """True when every expected record is in the copy (or waited ``max_s`` for)."""
        self.expected = _missing(self.expected, catalog_get)
        if not self.expected:
            self.since = None
            return True
        if self.since is None:
            self.since = now
        if now - self.since < self.max_s:
            return False
        log.warning(
            "catalogue copy still lacks %d item record(s) after %.0f s; writing lists "
            "anyway, and again once it holds them",
            len(self.expected),
            self.max_s,
        )
        for item, ts in self.expected.items():
            self.late[item] = max(ts, self.late.get(item, 0))
        self.expected, self.since = {}, None
        return True

    def written(self, items: Iterable[str]) -> None:
        """``items``' lists were written: owed again if records they may lack are late."""
        if self.late:
            self.owed.update(items)

    def settled(self, catalog_get: Callable[[str], Any]) -> list[str]:
        """The owed lists, once the copy holds every late record (else none)."""
        if not self.late:
            return []
        self.late = _missing(self.late, catalog_get)
        if self.late:
            return []
        owed, self.owed = sorted(self.owed), set()
        log.info("catalogue copy caught up: writing %d list(s) again", len(owed))
        return owed


def _missing(expected: dict[str, int], catalog_get: Callable[[str], Any]) -> dict[str, int]:
    """Those of ``expected`` (item -> record ts) the copy holds no record that recent of."""
    # 1 ms of slack: the vector's timestamp went through seconds as a float.
    return {
        item: ts
        for item, ts in expected.items()
        if ((catalog_get(item) or {}).get("ts") or 0) + 1 < ts
    }
