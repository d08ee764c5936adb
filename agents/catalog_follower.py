"""Keeps every worker's copy of the catalogue whole while other workers write to it.

The catalogue is a Faust ``GlobalTable``: each worker recovers every partition of its
changelog at start and after each rebalance. In between, Faust applies only the writes
the worker makes itself: changelog partitions that it owns are paused once recovered and
nothing resumes them (faust-streaming issue 283), so a record that the catalogue agent
of another worker writes never reaches this worker's copy. With two workers, each held
about half the catalogue, and users' lists built on the other half lost their category
candidates and stock filters.

The follower is a plain aiokafka consumer with no group, assigned to every partition of
the catalogue's changelog, that writes each record into the table's dict as it arrives.
It reads from the earliest offset: starting at the end would miss what other workers
write between the end of this worker's recovery and the follower's start (seen: 527 of
648 items). Until it has read up to the ends it found at start, the worker's agents wait
(:attr:`CatalogFollower.caught_up`), so no list is built on the older values it replays
over what recovery loaded. Records a worker wrote itself come back with the value it
already holds; a record older than the value held is skipped (:func:`apply_record`).
:meth:`CatalogFollower.synced` waits until the follower has read every
record written so far: a refresh calls it before it builds the final lists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.stores.memory import Store as MemoryStore

from agents.log_ends import fetched_ends, plain_consumer
from agents.tables import codecs_of
from streams.settings import Settings

log = logging.getLogger(__name__)
POLL_MS = 200
MAX_RECORDS = 5_000
PROGRESS_EVERY_S = 10.0
# A worker whose copy takes longer than this says so at the default log level (warning):
# its agents process nothing meanwhile, and a copy that does not move means the
# catalogue's changelog cannot be read.
WARN_AFTER_S = 60.0


class CatalogFollower:
    """Applies the catalogue changelog's new records to the worker's ``GlobalTable``."""

    def __init__(self, settings: Settings, table: Any) -> None:
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
            store = self.table.data.data  # the memory store's dict, as ``reader`` reads it
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


def monotone_recovery(table: Any) -> None:
    """Make Faust's changelog recovery of ``table`` apply records as the follower does.

    Faust recovers a ``GlobalTable`` again after each rebalance, from where its last
    recovery stopped up to the log end it finds then, and writes every record over the
    value held. The follower may already have applied newer records of the same keys
    (written after that log end): recovery would take those keys back to older values,
    and the follower, past them, would not restore them. Through :func:`apply_record`
    neither reader can take a key back in time, whatever order they run in.
    """
    store = table.data
    if not isinstance(store, MemoryStore):
        return
    held, partitions = store.data, store._key_partition

    def apply_changelog_batch(
        batch: Iterable[Any], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        for event in batch:
            key = to_key(event.key)
            if event.message.value is None:
                apply_record(held, key, None)
                partitions.pop(key, None)
            else:
                apply_record(held, key, to_value(event.value))
                partitions[key] = event.message.partition

    store.apply_changelog_batch = apply_changelog_batch  # type: ignore[method-assign]


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
