"""Item-side agents: fold item deltas into item state and publish item and trending lists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from agents.publisher import Publisher, Write
from agents.tables import put
from streams import trending
from streams.item_side import BatchResult, PartitionState, apply_groups, decode_groups
from streams.item_state import ItemState, scored_list
from streams.recommend import item_list
from streams.serving import encode_list
from streams.settings import Settings
from streams.trending import Partial


@dataclass
class AggregateItems:
    """Handles batches of item-delta messages, each addressed to one item partition."""

    settings: Settings
    items: Any  # faust Table[str, ItemState]
    parts: Any  # faust Table[str, PartitionState]
    catalog: Any  # faust GlobalTable[str, dict]
    trending_partials: faust.TopicT
    publisher: Publisher

    def _category(self, item: str) -> str | None:
        meta = self.catalog.get(item)
        return meta.get("category") if meta else None

    def _item(self, item: str) -> ItemState:
        return self.items.get(item) or ItemState()

    async def handle(self, events: Sequence[Any]) -> None:
        """Apply a batch; write states, item lists and trending partials before returning."""
        by_part: dict[int, BatchResult] = {}
        states: dict[int, PartitionState] = {}
        s = self.settings
        for event in events:
            p = event.message.partition
            part = states.get(p) or self.parts.get(str(p)) or PartitionState(Partial(s.trending_size))
            states[p] = part
            by_part[p] = apply_groups(
                decode_groups(event.message.value), part, self._item, self._category,
                s.half_life_s, s.neighbours_kept, by_part.get(p),
            )
        writes: list[Write] = []
        sends = []
        for p, result in by_part.items():
            part = states[p]
            for item, state in result.states.items():
                put(self.items, p, item, state)
            put(self.parts, p, str(p), part)
            writes.extend(self._item_lists(result, part.max_ts))
            if result.categories:
                payload = {"p": p, "t": part.max_ts, "c": part.partial.export(result.categories)}
                sends.append(await self.trending_partials.send(
                    key=str(p).encode(), value=orjson.dumps(payload), partition=0))
        await self.publisher.write(writes)
        await asyncio.gather(*sends)

    def _item_lists(self, result: BatchResult, now_ts: int) -> list[Write]:
        s = self.settings
        now = int(time.time() * 1000)
        return [
            (
                self.publisher.keys.item(rel, item),
                encode_list(
                    item_list(result.states[item], rel, self.catalog.get, s.item_list_size,
                              now_ts, s.half_life_s),
                    now, now_ts,
                ),
                s.item_ttl_s,
            )
            for item, relations in result.relations.items()
            for rel in sorted(relations)
        ]


@dataclass
class MergeTrending:
    """Merges per-partition top items into global and per-category lists in Redis."""

    settings: Settings
    partials: Any  # faust Table[str, dict]: "<partition>/<category>" -> {"t": [...], "p": [...]}
    publisher: Publisher
    max_ts: int = 0

    async def handle(self, raw: bytes) -> None:
        """Store one partition's changed lists, then republish those categories."""
        msg = orjson.loads(raw)
        p, cats = msg["p"], msg["c"]
        self.max_ts = max(self.max_ts, msg["t"])
        for cat, lists in cats.items():
            put(self.partials, 0, f"{p}/{cat}", lists)
        s = self.settings
        now = int(time.time() * 1000)
        keys = self.publisher.keys
        writes: list[Write] = []
        for cat in sorted(cats):
            found = {q: {cat: v} for q in range(s.partitions) if (v := self.partials.get(f"{q}/{cat}"))}
            top_t = trending.merge_category(found, cat, "t", s.trending_size)
            top_p = trending.merge_category(found, cat, "p", s.trending_size)
            t_list = scored_list(top_t, self.max_ts, s.half_life_s)
            p_list = [[i, round(c, 4)] for i, c in top_p]
            writes.append((keys.trending(cat), encode_list(t_list, now, self.max_ts), s.item_ttl_s))
            writes.append((keys.popular(cat), encode_list(p_list, now, self.max_ts), s.item_ttl_s))
        await self.publisher.write(writes)
