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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_ORIGINAL = "_kapparec_original_seek_to_committed"


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


def install() -> None:
    """Replace Faust's aiokafka ``seek_to_committed`` (idempotent)."""
    cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(cls, _ORIGINAL, None) is not None:
        return
    original = getattr(cls, "seek_to_committed", None)
    if original is None:  # a Faust without it: fail loudly rather than stall silently
        raise RuntimeError("faust AIOKafkaConsumerThread.seek_to_committed not found")
    setattr(cls, _ORIGINAL, original)
    cls.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
