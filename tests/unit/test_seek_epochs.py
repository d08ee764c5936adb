"""Seek epochs: a batch fetched before a seek cannot undo the read offsets it set.

Driven the way Faust's fetch loop drives the consumer: take a message from ``getmany``,
hand it on (here: nothing, the flow is suspended), set its read offset, take the next.
"""

from __future__ import annotations

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
