"""Seek epochs: a batch fetched before a seek cannot undo the read offsets it set.

Driven the way Faust's fetch loop drives the consumer: take a message from ``getmany``,
hand it on (here: nothing, the flow is suspended), set its read offset, take the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agents.faust_seek import _seek_epochs

TP = ("interactions", 0)


class FakeConsumer:
    """The consumer state the guard touches: read offsets, a batch, a committed offset."""

    def __init__(self, batch: list[int], committed: int) -> None:
        self.batch = batch
        self.committed = committed
        self._read_offset: dict[Any, int | None] = {}


async def plain_seek(self: FakeConsumer) -> None:
    self._read_offset[TP] = self.committed


async def plain_getmany(self: FakeConsumer, timeout: float) -> AsyncIterator[tuple[Any, int]]:
    for offset in self.batch:
        yield TP, offset


async def drain(consumer: FakeConsumer, getmany: Any, seek: Any, seek_after: int) -> list[int]:
    """Faust's loop, with a rebalance's seek landing after ``seek_after`` messages."""
    handed = []
    async for tp, offset in getmany(consumer, 1.0):
        handed.append(offset)
        consumer._read_offset[tp] = offset
        if len(handed) == seek_after:
            await seek(consumer)
    return handed


async def test_without_epochs_the_old_batch_moves_the_read_offset_past_the_seek() -> None:
    consumer = FakeConsumer(batch=list(range(189, 299)), committed=189)
    await drain(consumer, plain_getmany, plain_seek, seek_after=10)
    assert consumer._read_offset[TP] == 298  # 189..298 would now be dropped as read


async def test_a_seek_ends_the_old_batch_and_its_read_offset_stands() -> None:
    seek, getmany = _seek_epochs(plain_seek, plain_getmany)  # type: ignore[arg-type]
    consumer = FakeConsumer(batch=list(range(189, 299)), committed=189)
    handed = await drain(consumer, getmany, seek, seek_after=10)
    assert handed == list(range(189, 199))  # nothing of the old batch after the seek
    assert consumer._read_offset[TP] == 189  # the re-fetch from 189 is read again


async def test_a_batch_fetched_after_the_seek_runs_to_its_end() -> None:
    seek, getmany = _seek_epochs(plain_seek, plain_getmany)  # type: ignore[arg-type]
    consumer = FakeConsumer(batch=[5, 6, 7], committed=5)
    await seek(consumer)
    handed = await drain(consumer, getmany, seek, seek_after=0)
    assert handed == [5, 6, 7] and consumer._read_offset[TP] == 7


class PolledConsumer(FakeConsumer):
    """Adds aiokafka's side: a partition log, a fetch position and a long poll.

    The seek moves the position at once and sets the read offsets when it returns, as
    ``seek_to_committed`` on Faust's consumer thread does; a poll that began before the
    seek hands over whatever is at the position when it returns.
    """

    def __init__(self, log_end: int, committed: int) -> None:
        super().__init__(batch=[], committed=committed)
        self.log_end = log_end
        self.position = committed  # where aiokafka starts an assigned partition
        self.seek_started = asyncio.Event()
        self.seek_may_end = asyncio.Event()


async def slow_seek(self: PolledConsumer) -> None:
    self.position = self.committed
    self.seek_started.set()
    await self.seek_may_end.wait()
    self._read_offset[TP] = self.committed


async def long_poll(self: PolledConsumer, timeout: float) -> AsyncIterator[tuple[Any, int]]:
    await self.seek_started.wait()
    records = list(range(self.position, self.log_end))
    self.position = self.log_end
    for offset in records:
        yield TP, offset


async def fetch_once(consumer: FakeConsumer, getmany: Any) -> list[int]:
    """One pass of Faust's fetch loop: hand on what is not below the read offset."""
    handed = []
    async for tp, offset in getmany(consumer, 1.0):
        read = consumer._read_offset.get(tp)
        if read is None or offset >= read:
            handed.append(offset)
            consumer._read_offset[tp] = offset
    return handed


async def test_a_record_polled_after_the_seek_moved_the_position_is_read_again() -> None:
    seek, getmany = _seek_epochs(slow_seek, long_poll)  # type: ignore[arg-type]
    consumer = PolledConsumer(log_end=2, committed=1)  # record 1 is the partition's last
    polling = asyncio.ensure_future(fetch_once(consumer, getmany))
    await asyncio.sleep(0)  # the poll is waiting when the seek starts
    seeking = asyncio.ensure_future(seek(consumer))
    await asyncio.sleep(0.01)  # the poll returns record 1 while the seek still runs
    consumer.seek_may_end.set()
    await seeking
    handed = await polling
    handed += await fetch_once(consumer, getmany)
    assert handed == [1]
    assert consumer.position == 2 and consumer._read_offset[TP] == 1
