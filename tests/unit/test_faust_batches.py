"""Batch messages of source-topic records: cut, unpacked, and committed exactly.

The acknowledgement and commit arithmetic is Faust's own (``Consumer.ack`` and
``Consumer._new_offset``), run on a stand-in holding the consumer state they touch; the
fetch loop's gap rule is copied from Faust's ``_drain_messages``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport import consumer as faust_consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from agents.faust_batches import (
    BatchRecord,
    Records,
    _batching,
    coalesce,
    covers_from,
    records_of,
)
from agents.faust_seek import _EPOCH

SOURCE = TP("interactions", 0)
OTHER = TP("item-deltas", 0)
Consumer = faust_consumer.Consumer
FAUST_ACK = getattr(Consumer, "_kapparec_original_ack", Consumer.ack)


def record(tp: TP, offset: int, value: bytes = b"v") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 1_000 + offset, 0, b"k", value, None, 1, len(value), ()
    )


def message(rec: Any) -> ConsumerMessage:
    """What Faust's aiokafka driver (``_to_message``) makes of a record."""
    return ConsumerMessage(
        rec.topic,
        rec.partition,
        rec.offset,
        rec.timestamp / 1000,
        rec.timestamp_type,
        rec.headers,
        rec.key,
        rec.value,
        rec.checksum,
        rec.serialized_key_size,
        rec.serialized_value_size,
        TP(rec.topic, rec.partition),
    )


def batch(first: int, last: int, tp: TP = SOURCE, offsets: Any = None) -> ConsumerMessage:
    offsets = range(first, last + 1) if offsets is None else offsets
    return message(BatchRecord.of(Records(record(tp, o) for o in offsets)))


class FakeConsumer:
    """The state Faust's ack, commit arithmetic and fetch loop keep per partition."""

    _new_offset = Consumer._new_offset
    _add_gap = Consumer._add_gap

    def __init__(self, committed: int | None = None) -> None:
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._committed_offset[SOURCE] = committed
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._unacked_messages: set[Any] = set()
        self._n_acked = 0
        self._waiting_for_ack = None
        self.fetched: list[ConsumerMessage] = []
        self.gaps_seen: list[tuple[int, int]] = []

    def seek(self, committed: int) -> None:
        """What a seek does here: Faust's perform_seek, counted by agents.faust_seek."""
        setattr(self, _EPOCH, getattr(self, _EPOCH, 0) + 1)
        self._read_offset[SOURCE] = committed
        self._committed_offset[SOURCE] = committed

    def commit(self) -> int | None:
        """What Faust's next commits would reach now (each recorded, as a commit does)."""
        reached = None
        while (offset := self._new_offset(SOURCE)) is not None:
            self._committed_offset[SOURCE] = reached = offset
        return reached


async def _no_wait(self: Any, timeout: float) -> tuple[Any, Any]:
    raise AssertionError("not used")


async def _fetched(self: FakeConsumer, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    for msg in self.fetched:
        yield msg.tp, msg


_, FETCH, ACK = _batching(_no_wait, _fetched, FAUST_ACK)


async def drain(consumer: FakeConsumer, fetch: Any = FETCH) -> list[int]:
    """Faust's fetch loop over ``consumer.fetched``: drop rule, gap rule, read offsets."""
    handed = []
    async for tp, msg in fetch(consumer, 1.0):
        r_offset = consumer._read_offset[tp]
        if r_offset is None or msg.offset >= r_offset:
            gap = msg.offset - (r_offset or 0)
            if gap > 1 and r_offset:
                consumer.gaps_seen.append((r_offset + 1, msg.offset))
                await consumer._add_gap(tp, r_offset + 1, msg.offset)
            handed.append(msg.offset)
            consumer._read_offset[tp] = msg.offset
    return handed


def test_coalesce_cuts_source_partitions_in_order_and_leaves_others() -> None:
    fetched = {
        SOURCE: [record(SOURCE, o) for o in range(10, 17)],
        OTHER: [record(OTHER, o) for o in range(3)],
    }
    out = coalesce(fetched, {"interactions"}, chunk=3)
    cut = out[SOURCE]
    assert [[r.offset for r in b.value] for b in cut] == [[10, 11, 12], [13, 14, 15], [16]]
    assert [b.offset for b in cut] == [12, 15, 16]  # each batch message: its last offset
    assert all(b.topic == "interactions" and b.partition == 0 for b in cut)
    assert out[OTHER] == fetched[OTHER]  # not a source topic: one message per record


def test_records_of_unpacks_batches_and_passes_plain_messages() -> None:
    plain = message(record(OTHER, 7))
    events = [SimpleNamespace(message=batch(0, 2)), SimpleNamespace(message=plain)]
    got = records_of(events)
    assert [(r.topic, r.offset) for r in got] == [
        ("interactions", 0),
        ("interactions", 1),
        ("interactions", 2),
        ("item-deltas", 7),
    ]
    assert got[-1] is plain


@pytest.mark.parametrize(
    ("first", "follows", "expected"),
    [
        (5, None, 5),  # nothing known before it
        (5, 5, 5),
        (5, 3, 3),  # a hole before the batch is covered too
        (5, 7, 5),  # never beyond its own first record
    ],
)
def test_covers_from(first: int, follows: int | None, expected: int) -> None:
    assert covers_from(first, follows) == expected


def test_batches_commit_exactly_when_acknowledged_even_after_a_lone_record_at_zero() -> None:
    consumer = FakeConsumer()
    first, second = batch(0, 0), batch(1, 20)
    consumer.fetched = [first, second]
    assert asyncio.run(drain(consumer)) == [0, 20]
    assert consumer.gaps_seen == []  # Faust's gap rule never fires for a batch message
    assert consumer.commit() is None  # nothing acknowledged, nothing committed
    assert ACK(consumer, first)
    assert consumer.commit() == 1
    assert consumer.commit() is None  # the second batch is still being processed
    assert ACK(consumer, second)
    assert consumer.commit() == 21
    assert not ACK(consumer, second)  # acknowledged once


@pytest.mark.parametrize("fetch", [FETCH, _fetched], ids=["batching", "faust-alone"])
def test_a_dropped_batch_fetched_again_in_another_cut_commits_only_what_was_done(
    fetch: Any,
) -> None:
    consumer = FakeConsumer()
    consumer.seek(100)
    consumer._read_offset[SOURCE] = 99  # the record before was read
    consumer.fetched = [batch(100, 150)]
    asyncio.run(drain(consumer, fetch))  # handed on, then dropped at a rebalance: never acked
    consumer.seek(100)
    again = [batch(100, 120), batch(121, 170)]
    consumer.fetched = again
    asyncio.run(drain(consumer, fetch))
    ACK(consumer, again[0])
    if fetch is _fetched:
        # Without the read offset set before each batch, Faust records the cuts' ranges
        # as gaps and, once 120 is acknowledged, commits records 121..170 unread.
        assert consumer.commit() == 171
        return
    assert consumer.commit() == 121
    ACK(consumer, again[1])
    assert consumer.commit() == 171


def test_a_hole_after_a_seek_does_not_stall_commits() -> None:
    consumer = FakeConsumer()
    consumer.seek(40)  # 40..44 compacted away, or control records
    later = batch(45, 60)
    consumer.fetched = [later]
    asyncio.run(drain(consumer))
    ACK(consumer, later)
    assert consumer.commit() == 61


def test_holes_between_batches_of_a_never_committed_partition_do_not_stall() -> None:
    consumer = FakeConsumer()
    first, second = batch(0, 15), batch(20, 35, offsets=[20, 22, 35])
    consumer.fetched = [first, second]
    asyncio.run(drain(consumer))
    ACK(consumer, first)
    ACK(consumer, second)
    assert consumer.commit() == 36


def test_a_batch_from_before_a_seek_does_not_vouch_for_the_records_read_again() -> None:
    consumer = FakeConsumer()
    consumer.seek(100)
    done, stale = batch(100, 115), batch(116, 131)
    consumer.fetched = [done, stale]
    asyncio.run(drain(consumer))
    consumer.seek(100)  # a rebalance: both are read again from 100
    ACK(consumer, stale)  # skipped by the stream (an earlier generation) and acknowledged
    assert consumer.commit() is None  # 100..131 are being read again, not done
    again = [batch(100, 115), batch(116, 131)]
    consumer.fetched = again
    asyncio.run(drain(consumer))
    ACK(consumer, again[0])
    assert consumer.commit() == 116  # not beyond: 116..131 are not processed yet
    ACK(consumer, again[1])  # ends where the stale batch did: Faust had 131 already
    assert consumer.commit() == 132


def test_plain_messages_keep_faust_acknowledgement() -> None:
    consumer = FakeConsumer(committed=0)
    msgs = [message(record(SOURCE, o)) for o in range(3)]
    consumer.fetched = msgs
    assert asyncio.run(drain(consumer)) == [0, 1, 2]
    for m in msgs:
        ACK(consumer, m)
    assert consumer.commit() == 3
