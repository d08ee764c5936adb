"""Every worker's copy of the whole catalogue, and the follower that keeps it whole.

Every worker filters candidates with the catalogue (stock, deletions, categories), so
each holds all of it, whichever catalogue partitions its own agent ingests. The copy is a
plain dict (:class:`CatalogCopy`). The worker's catalogue agent writes to it and logs
each write to the catalogue's changelog (``agents.tables.put``); the follower, a plain
aiokafka consumer with no group, assigned to every partition of that changelog, applies
every record, the other workers' included, from the earliest offset on.

Why not a Faust ``GlobalTable``, which was used before: Faust applies only the writes
the worker makes itself once a global table is recovered (changelog partitions that it
owns are paused after recovery and nothing resumes them: faust-streaming issue 283), so
with two workers each held about half the catalogue. The follower was needed anyway,
and beside it Faust's recovery read the whole changelog once more at every start and
after every rebalance, through its per-record path: 13 s for 100,000 records, where the
follower takes 0.6 s. Faust no longer knows of the catalogue as a table.

Until the follower has read up to the ends it found at start, the worker's agents wait
(:attr:`CatalogFollower.caught_up`). Records a worker wrote itself come back with the
value it already holds; a record older (by ``ts``) than the value held is skipped
(:func:`apply_record`). :meth:`CatalogFollower.synced` waits until the follower has
read every record written so far: a refresh calls it before it builds the final lists,
and the catalogue agent after a rebalance, before it ingests partitions another worker
wrote until then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents import codecs
from agents.log_ends import fetched_ends, plain_consumer
from agents.tables import codecs_of
from streams.settings import Settings
from streams.topics import TABLE_CATALOG, changelog_name

log = logging.getLogger(__name__)
POLL_MS = 200
MAX_RECORDS = 5_000
PROGRESS_EVERY_S = 10.0
# A worker whose copy takes longer than this says so at the default log level (warning):
# its agents process nothing meanwhile, and a copy that does not move means the
# catalogue's changelog cannot be read.
WARN_AFTER_S = 60.0


class CatalogCopy:
    """The worker's catalogue: item id -> catalogue record, with its changelog topic.

    It has what ``agents.tables.reader`` and ``put`` use of a table (``data``, the
    changelog topic and its codecs, the app's producer), and nothing Faust recovers.
    """

    key_serializer = codecs.STR
    value_serializer = codecs.ORJSON

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.partitions = settings.partitions
        self.data: dict[str, Any] = {}
        self.changelog_topic = app.topic(
            changelog_name(settings.app_id, TABLE_CATALOG),
            partitions=settings.partitions,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
        )

    def get(self, item_id: str) -> Any:
        """The item's record, or None."""
        return self.data.get(item_id)


class CatalogFollower:
    """Applies every record of the catalogue's changelog to the worker's copy."""

    def __init__(self, settings: Settings, table: CatalogCopy) -> None:
        self.settings = settings
        self.table = table
        self.positions: dict[TopicPartition, int] = {}
        self.applied = 0
        self.caught_up = asyncio.Event()

    def _consumer(self, suffix: str) -> AIOKafkaConsumer:
        return plain_consumer(self.settings, f"{self.settings.app_id}-catalog-{suffix}")

    async def _ends(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        tps = list(self.positions) or self._partitions()
        return await fetched_ends(lambda: self._consumer("end"), await consumer.end_offsets(tps))

    def _partitions(self) -> list[TopicPartition]:
        name = self.table.changelog_topic.get_topic_name()
        return [TopicPartition(name, p) for p in range(self.table.partitions)]

    async def run(self) -> None:
        """Follow the changelog from its beginning until the worker stops."""
        consumer = self._consumer("follower")
        await consumer.start()
        try:
            tps = self._partitions()
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            start = await self._ends(consumer)
            self.positions = dict.fromkeys(tps, 0)
            key_codec, value_codec = codecs_of(self.table)
            store = self.table.data
            log.info("catalogue copy: %d records to read", sum(start.values()))
            began = time.monotonic()
            next_report = began + PROGRESS_EVERY_S
            while True:
                if not self.caught_up.is_set():
                    left = sum(max(0, end - self.positions[tp]) for tp, end in start.items())
                    if not left:
                        log.info("catalogue copy caught up: %d records", self.applied)
                        self.caught_up.set()
                    elif (now := time.monotonic()) >= next_report:
                        # The worker's agents wait meanwhile: say how far it has come.
                        log.log(
                            progress_level(now - began),
                            "catalogue copy: %d records read, %d to go; agents waiting %.0f s",
                            self.applied,
                            left,
                            now - began,
                        )
                        next_report += PROGRESS_EVERY_S
                polled = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                for records in polled.values():
                    for m in records:
                        value = None if m.value is None else value_codec.loads(m.value)
                        apply_record(store, key_codec.loads(m.key), value)
                    self.applied += len(records)
                for tp in tps:  # the next offset to read, past any offsets without a record
                    self.positions[tp] = await consumer.position(tp)
        finally:
            await consumer.stop()

    async def synced(self, timeout_s: float = 60.0) -> bool:
        """Wait until every record written to the changelog so far has been applied.

        Returns False (and logs) after ``timeout_s``: a refresh then goes on with what
        the worker holds rather than stall.
        """
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
            ends = await asyncio.wait_for(self._probe_ends(), deadline - time.monotonic())
            while any(self.positions[tp] < end for tp, end in ends.items()):
                if time.monotonic() > deadline:
                    raise TimeoutError
                await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("catalogue copy not in sync after %.0f s; refreshing anyway", timeout_s)
            return False
        except KafkaError as exc:
            log.warning("catalogue log ends unknown (%s); refreshing anyway", exc)
            return False
        return True

    async def _probe_ends(self) -> dict[TopicPartition, int]:
        probe = self._consumer("sync")
        await probe.start()
        try:
            return await self._ends(probe)
        finally:
            await probe.stop()


def progress_level(waited_s: float) -> int:
    """The log level of a progress report: info at first, warning past ``WARN_AFTER_S``."""
    return logging.WARNING if waited_s >= WARN_AFTER_S else logging.INFO


def apply_record(store: dict[Any, Any], key: Any, value: Any) -> None:
    """Apply one changelog record to a worker's catalogue copy.

    A record older (by its ``ts``) than the value held is skipped: the worker's own
    write of a newer value reaches its copy at once, while the follower may still be
    reading older records of the same key. Applying them would show the older value
    until the newer record comes by, and the catalogue agent, which compares an
    incoming record with the value held, could then accept a late record that the
    newer value should have turned away. A tombstone always deletes.
    """
    if value is None:
        store.pop(key, None)
        return
    held = store.get(key)
    if held is not None and _ts(held) > _ts(value):
        return
    store[key] = value


def _ts(value: Any) -> int:
    ts = value.get("ts", 0) if isinstance(value, dict) else 0
    return ts if isinstance(ts, int) else 0
