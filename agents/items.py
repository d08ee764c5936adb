"""Item-side agents: fold item deltas into item state and publish item and trending lists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
import orjson

from agents.control import RECATEGORIZE, REFRESH, control_of
from agents.loop_priority import LoopPriority
from agents.publisher import Publisher, Write
from agents.tables import put_all, reader
from streams.item_side import (
    BatchResult,
    PartitionState,
    apply_groups,
    decode_groups,
    recategorize,
)
from streams.item_state import ItemState
from streams.recommend import item_list, trending_list
from streams.serving import encode_list
from streams.settings import Settings
from streams.trending import Partial, Tops

# A trending-partials message's lists, at most (JSON bytes): well under the 1 MB limit.
MAX_PARTIALS_BYTES = 256 * 1024
LISTS_PER_PAUSE = 64  # item lists built between two pauses (about 6 ms)
CATEGORIES_PER_PAUSE = 16  # trending categories merged between two pauses


@dataclass
class AggregateItems:
    """Handles batches of item-delta messages, each addressed to one item partition."""

    settings: Settings
    items: Any  # faust Table[str, ItemState]
    parts: Any  # faust Table[str, PartitionState]: "<partition>" -> its event time
    tops: Any  # faust Table[str, Tops]: "<partition>/<category>" -> that category's lists
    catalog: Any  # agents.catalog_follower.CatalogCopy
    trending_partials: faust.TopicT
    publisher: Publisher
    # The ingest's batches go first on the shared loop (agents/loop_priority.py).
    priority: LoopPriority = field(default_factory=LoopPriority)

    def __post_init__(self) -> None:
        self._items_get = reader(self.items)
        self._tops_get = reader(self.tops)
        self._catalog_get = reader(self.catalog)

    def _category(self, item: str) -> str | None:
        meta = self._catalog_get(item)
        return meta.get("category") if meta else None

    def _item(self, item: str) -> ItemState:
        return self._items_get(item) or ItemState()

    async def handle(self, events: Sequence[Any]) -> None:
        """Apply a batch; write states, item lists and trending partials before returning."""
        by_part: dict[int, BatchResult] = {}
        states: dict[int, PartitionState] = {}
        s = self.settings
        for event in events:
            p = event.message.partition
            part = states.get(p)
            if part is None:
                part = self.parts.get(str(p)) or PartitionState(Partial(s.trending_size))
                part.partial.load = partial(_loaded, self._tops_get, p)
                states[p] = part
            result = by_part.setdefault(p, BatchResult())
            if control_of(event.message.headers) == RECATEGORIZE:
                moves = orjson.loads(event.message.value)
                result.categories |= recategorize(moves, part, partial(_current, result, self))
                continue
            apply_groups(
                decode_groups(event.message.value),
                part,
                self._item,
                self._category,
                s.half_life_s,
                s.neighbours_per_partition,
                result,
                s.neighbour_list_bytes,
            )
            await self.priority.step_aside()
        # Item states first: each carries its own de-duplication, so a crash between these
        # writes leaves nothing counted twice and nothing lost on replay. One wait for all
        # partitions' item states, then one for the partition states.
        pause = self.priority.step_aside
        await put_all(
            (
                (self.items, p, item, st)
                for p, result in by_part.items()
                for item, st in result.states.items()
            ),
            pause,
        )
        # Then each changed category's lists, a record of their own; then the partition's.
        await put_all(
            (
                (self.tops, p, f"{p}/{cat}", states[p].partial.tops(cat))
                for p, result in by_part.items()
                for cat in sorted(result.categories | states[p].unsaved)
            ),
            pause,
        )
        for p in by_part:
            states[p].unsaved.clear()
        await put_all(((self.parts, p, str(p), states[p]) for p in by_part), pause)
        writes: list[Write] = []
        sends = []
        for p, result in by_part.items():
            part = states[p]
            writes.extend(await self._item_lists(result))
            for value in _partials_messages(p, part, sorted(result.categories)):
                sends.append(
                    await self.trending_partials.send(key=str(p).encode(), value=value, partition=0)
                )
        await self.publisher.write(writes)
        await asyncio.gather(*sends)

    async def _item_lists(self, result: BatchResult) -> list[Write]:
        s = self.settings
        now = int(time.time() * 1000)
        writes: list[Write] = []
        for item, relations in result.relations.items():
            state = result.states[item]
            for rel in sorted(relations):
                lst = item_list(state, rel, self._catalog_get, s.item_list_size, s.half_life_s)
                value = encode_list(lst, now, state.last_ts)
                writes.append((self.publisher.keys.item(rel, item), value, s.item_ttl_s))
                if len(writes) % LISTS_PER_PAUSE == 0:
                    await self.priority.step_aside()
        await self.priority.step_aside()
        return writes


def _loaded(get: Callable[[str], Tops | None], p: int, category: str) -> Tops | None:
    return get(f"{p}/{category}")


def _partials_messages(p: int, part: PartitionState, categories: Sequence[str]) -> list[bytes]:
    """Trending-partials messages of ``categories``' lists, each of at most about
    ``MAX_PARTIALS_BYTES``: a batch can change thousands of categories, and one message
    of them all would pass the broker's 1 MB limit. Most batches fit in one, encoded once.
    """
    exported = part.partial.export(categories)
    if not exported:
        return []
    whole = orjson.dumps({"p": p, "t": part.max_ts, "c": exported})
    if len(whole) <= MAX_PARTIALS_BYTES:
        return [whole]
    groups: list[dict[str, Any]] = [{}]
    size = 0
    for cat, lists in exported.items():
        n = len(orjson.dumps(lists)) + len(cat) + 8
        if groups[-1] and size + n > MAX_PARTIALS_BYTES:
            groups.append({})
            size = 0
        groups[-1][cat] = lists
        size += n
    return [orjson.dumps({"p": p, "t": part.max_ts, "c": g}) for g in groups]


def _current(result: BatchResult, agg: AggregateItems, item: str) -> ItemState | None:
    """An item's state as of this batch: updated in it, else as stored."""
    state = result.states.get(item)
    return state if state is not None else agg._items_get(item)


MAX_TS = "max_ts"  # key of the latest event time in the trending table (others: "p/category")


@dataclass
class MergeTrending:
    """Merges per-partition top items into global and per-category lists in Redis."""

    settings: Settings
    partials: Any  # faust Table[str, dict]: "<partition>/<category>" -> {"t": [...], "p": [...]}
    catalog: Any  # agents.catalog_follower.CatalogCopy
    publisher: Publisher
    max_ts: int = 0
    # Waits until this worker's catalogue copy holds every record written so far.
    catalog_synced: Callable[[], Awaitable[bool]] | None = None
    # Merging is background work: it steps aside for the ingest's batches every
    # CATEGORIES_PER_PAUSE categories and during its table writes.
    priority: LoopPriority = field(default_factory=LoopPriority)

    def __post_init__(self) -> None:
        self._catalog_get = reader(self.catalog)

    async def handle(self, event: Any) -> None:
        """Store one partition's changed lists and republish those categories.

        A refresh request (sent once the log is drained) republishes every category, so
        every list is decayed to the same, final, event time whatever the batching was.
        """
        msg = event.message
        if control_of(msg.headers) == REFRESH:
            if self.catalog_synced is not None:
                await self.catalog_synced()
            await self._publish(self._categories())
            return
        data = orjson.loads(msg.value)
        p, cats = data["p"], data["c"]
        self.max_ts = max(self._max_ts(), data["t"])
        await put_all(
            [
                *((self.partials, 0, f"{p}/{cat}", lists) for cat, lists in cats.items()),
                (self.partials, 0, MAX_TS, self.max_ts),
            ],
            self.priority.step_aside,
        )
        await self._publish(cats)

    def _max_ts(self) -> int:
        # Kept in the table too, so a restarted worker decays to the same time.
        return max(self.max_ts, self.partials.get(MAX_TS) or 0)

    def _categories(self) -> set[str]:
        return {key.split("/", 1)[1] for key in list(self.partials.keys()) if "/" in key}

    async def _publish(self, cats: Iterable[str]) -> None:
        s = self.settings
        now = int(time.time() * 1000)
        ref = self.max_ts = self._max_ts()
        keys = self.publisher.keys
        writes: list[Write] = []
        for n, cat in enumerate(sorted(cats)):
            if n and n % CATEGORIES_PER_PAUSE == 0:
                await self.priority.step_aside()
            found = {
                q: {cat: v} for q in range(s.partitions) if (v := self.partials.get(f"{q}/{cat}"))
            }
            t_list, p_list = (
                trending_list(
                    found, cat, kind, s.trending_size, self._catalog_get, ref, s.half_life_s
                )
                for kind in ("t", "p")
            )
            writes.append((keys.trending(cat), encode_list(t_list, now, ref), s.item_ttl_s))
            writes.append((keys.popular(cat), encode_list(p_list, now, ref), s.item_ttl_s))
        await self.publisher.write(writes)
