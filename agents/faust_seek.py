"""Start every partition without a committed offset from its beginning, explicitly.

On each assignment Faust seeks its partitions "to the committed offsets" once the tables
are recovered, and drops whatever its streams read before that (the messages of an
earlier generation or of a suspended flow are skipped, never acknowledged): the seek is
what makes them come again. aiokafka's ``seek_to_committed`` only seeks a partition that
has a committed offset above 0. A partition the group never committed (an item-delta
partition the previous worker had no time to commit, say) is left where the fetcher
happens to be, so the skipped messages are not read again. Faust then sees the hole at
the head of its acknowledged offsets and never commits that partition again: the worker
processes everything after it, but its lag never drains and a restart redoes all of it.

This puts the missing seek in: a partition with no committed offset (or 0) goes back to
its beginning, which is what ``auto_offset_reset=earliest`` means for it. Messages read
twice are harmless: every handler is idempotent by offset. Changelog partitions are left
alone; table recovery seeks them itself.

A second guard keeps a seek from being undone by the batch that was being read when it
happened. Faust's fetch loop marks each message it hands on as read (its "read offset")
even when a rebalance suspended the flow and the message was dropped; the seek after the
rebalance sets the read offsets back to the committed ones so that the dropped messages
come again. Faust stops reading an old batch when the group generation changes, but a
broker may keep the generation across re-joins (the embedded one does): the rest of the
old batch was then still handed on after the seek, pushed the read offset past the
dropped range, and the re-fetched messages of that range were discarded as already read.
The range was never acknowledged, so the partition was never committed again. Here every
seek starts an epoch, and a batch fetched in an earlier epoch stops at the first message
after the seek.

Stopping the batch is not enough on its own: Faust's fetch runs on its consumer thread,
next to the seek, and a long poll that began before the seek may take its records from
aiokafka after the seek moved the position. Those records are past the seek: it does not
bring them back, and the partition's last one was never read again (a restarted worker
stayed one record behind for good; with more records behind it, the missed one would
fall in the gap between the seek's read offset and the next record, and be skipped).
So a fetch that a seek overlapped is followed by the same seek again, once the fetch is
over and the seek in progress is done (seeks never overlap): every partition is back at
its committed offset before the next fetch, whatever the cut-off batch held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.faust_patch import replace

log = logging.getLogger(__name__)

_EPOCH = "_kapparec_seek_epoch"  # consumer attribute: number of seeks so far
_LOCK = "_kapparec_seek_lock"  # consumer attribute: held while a seek runs


def epoch_of(consumer: Any) -> int:
    """How many seeks ``consumer`` has made (0 before the first, or without this guard)."""
    return int(getattr(consumer, _EPOCH, 0))


async def seek_uncommitted_to_beginning(
    consumer: Any, is_changelog: Callable[[str], bool]
) -> Mapping[Any, int | None]:
    """Seek ``consumer`` (an ``AIOKafkaConsumer``) to its committed offsets, and every
    assigned partition with none to its beginning. Returns the committed offsets."""
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    fresh = [tp for tp, offset in committed.items() if not offset and not is_changelog(tp.topic)]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    return committed


async def _seek_to_committed(self: Any) -> Mapping[Any, int | None]:
    changelogs = self.app.tables.changelog_topics
    return await self.call_thread(  # type: ignore[no-any-return]
        seek_uncommitted_to_beginning, self._ensure_consumer(), changelogs.__contains__
    )


def _seek_epochs(
    perform_seek: Callable[[Any], Awaitable[None]],
    getmany: Callable[[Any, float], AsyncIterator[tuple[Any, Any]]],
) -> tuple[Callable[[Any], Awaitable[None]], Callable[[Any, float], AsyncIterator[Any]]]:
    """``perform_seek`` and ``getmany`` of Faust's consumer, with seek epochs."""

    def lock(consumer: Any) -> asyncio.Lock:
        held: asyncio.Lock | None = getattr(consumer, _LOCK, None)
        if held is None:
            held = asyncio.Lock()
            setattr(consumer, _LOCK, held)
        return held

    async def seek(self: Any) -> None:
        async with lock(self):
            setattr(self, _EPOCH, getattr(self, _EPOCH, 0) + 1)
            await perform_seek(self)

    async def fetch(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        epoch = getattr(self, _EPOCH, 0)
        async for tp, message in getmany(self, timeout):
            if getattr(self, _EPOCH, 0) != epoch:
                break  # the seek may have come before or after this batch left aiokafka
            yield tp, message
            # The fetch loop has handed ``message`` on and set its read offset by now.
            if getattr(self, _EPOCH, 0) != epoch:
                break
        if getattr(self, _EPOCH, 0) != epoch:
            try:  # put every position and read offset back where the seek put them
                await seek(self)
            except Exception as exc:  # as Faust treats the seek its own fetch makes
                log.warning("seek after a fetch overlapped by a seek failed: %r", exc)

    return seek, fetch


def install() -> None:
    """Replace Faust's aiokafka ``seek_to_committed`` and guard its seeks (idempotent)."""
    replace(
        faust_aiokafka.AIOKafkaConsumerThread,
        lambda _: _seek_to_committed,
        "seek_to_committed",
    )
    replace(faust_consumer.Consumer, _seek_epochs, "perform_seek", "getmany")
