"""Table writes with an explicit changelog partition.

Faust picks a changelog partition from the stream's *current* event, which is wrong
when one batch spans several partitions. Writing the value and its changelog record
ourselves keeps each key's changelog on the partition that owns the key, so recovery
after a restart or rebalance hands the state to the right worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from faust.stores.memory import Store as MemoryStore

YIELD_EVERY = 256  # writes serialised between two turns of the event loop


def reader(table: Any) -> Callable[[str], Any]:
    """``table.get`` without Faust's per-read path: the memory store's own ``dict.get``.

    A table read goes through ``Mapping.get``, the table's sensors and the store's
    ``__getitem__``, and a missing key costs a raised ``KeyError``: about 1 µs, and the
    hot paths read a table for every candidate item and every touched item and user.
    Writes go to the same dict (:func:`put`), so reads see them at once.
    """
    store = table.data
    if isinstance(store, MemoryStore):
        return store.data.get  # type: ignore[no-any-return]
    return store.get  # type: ignore[no-any-return]


def put(table: Any, partition: int, key: str, value: Any) -> Any:
    """Set ``table[key] = value`` and log it to changelog ``partition``.

    Returns the changelog send's future. Await it before acknowledging the input:
    Faust's own table writes are fire-and-forget, and an offset committed before its
    state reached the changelog loses that state on restart.
    """
    table.data[key] = value
    return table.send_changelog(partition, key, value)


async def put_all(writes: Iterable[tuple[Any, int, str, Any]]) -> None:
    """Apply ``(table, partition, key, value)`` writes and wait until all are durable."""
    futures = []
    for i, w in enumerate(writes, 1):
        futures.append(put(*w))
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # serialising thousands of states: let other agents in
    if futures:
        await asyncio.gather(*futures)
