"""Catalog ingest: item metadata into the worker's catalogue copy and its changelog (every
worker filters with it, see agents/catalog_follower.py) and Redis, and the item's content
vector into the item-vectors topic.

The content vector is written here, by the owner of the item's catalogue partition, so a
new item reaches every worker's HNSW replica (and so the similar-items lists) before
anyone touched it. The vector is a pure function of the record (``ContentEncoder`` with
the shared dimension and seed), so a replay writes the same records again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from agents.control import HEADER, RECATEGORIZE
from agents.dead_letters import DeadLetters
from agents.faust_batches import records_of
from agents.publisher import Publisher, Write
from agents.record_checks import check_not_ahead, check_partition
from agents.tables import put
from schemas.codec import check_key, decode_catalog
from schemas.errors import DecodeError, KapparecError
from streams.catalog import merge_record
from streams.models.content import ContentEncoder
from streams.models.replica import content_encoder, content_record, encode_value
from streams.partitioning import partition_for
from streams.settings import Settings

AGENT = "ingest_catalog"


class CatalogNotSynced(KapparecError):
    """The worker's catalogue copy could not be brought up to date with its changelog."""


@dataclass
class IngestCatalog:
    """Handles batches of raw catalog messages."""

    settings: Settings
    catalog: Any  # agents.catalog_follower.CatalogCopy
    dead_letters: DeadLetters
    publisher: Publisher
    item_deltas: faust.TopicT
    item_vectors: faust.TopicT
    encoder: ContentEncoder = field(default_factory=content_encoder)
    # Waits until the catalogue copy holds every record written so far, and counts the
    # worker's rebalances: after one, partitions another worker wrote until then may be
    # this worker's now, and their records are compared with the copy's values.
    catalog_synced: Callable[[], Awaitable[bool]] | None = None
    rebalances: Callable[[], int] = lambda: 0
    _synced_at: int = field(default=-1, init=False)

    async def handle_batch(self, events: Sequence[Any]) -> None:
        """Apply a batch; returns once its table writes, messages and Redis writes are durable.

        Records are applied in order in memory; their writes go out together and are
        awaited once per batch (one acknowledgement wait per record made catalogue ingest
        the slowest stage: 50 ms a record behind the other agents' sends).
        """
        n = self.rebalances()
        if self.catalog_synced is not None and self._synced_at != n:
            if not await self.catalog_synced():
                # Compared with a copy that lacks another worker's last writes, an older
                # record would win over a newer one. The worker stops; the batch is redone.
                raise CatalogNotSynced(
                    "the catalogue copy did not catch up with its changelog after a "
                    "rebalance; not ingesting catalogue records against it"
                )
            self._synced_at = n
        pending: list[Any] = []  # futures of changelog and vector sends
        rejected: list[tuple[Any, DecodeError]] = []
        # item partition -> moves: [item, new category, old category or null]
        moves: dict[int, list[list[str | None]]] = defaultdict(list)
        writes: list[Write] = []
        for msg in records_of(events):
            try:
                item = decode_catalog(msg.value, self.settings.max_event_bytes)
                check_key(msg.key, item.item_id, "item_id")
                check_partition(msg.partition, item.item_id, self.settings.partitions, "item_id")
                check_not_ahead(item.ts, self.settings.max_future_s)
            except DecodeError as exc:
                rejected.append((msg, exc))
                continue
            before = self.catalog.get(item.item_id)
            meta = merge_record(before, item)
            if meta is None:
                continue
            pending.append(await put(self.catalog, msg.partition, item.item_id, meta))
            p = partition_for(item.item_id, self.settings.partitions)
            category = meta.get("category") or None
            old_category = (before or {}).get("category") or None
            if category != old_category:
                # The item side offers the item again under its category, or drops it
                # from its old one's lists (see recategorize).
                moves[p].append([item.item_id, category, old_category])
            # No TTL: the record mirrors the compacted catalogue, which does not age out;
            # readers name packed `c` reasons and show titles from it. It goes with its
            # version (promotion expires the old namespace).
            key = self.publisher.keys.item_meta(item.item_id)
            writes.append((key, orjson.dumps(meta), None))
            record = content_record(self.encoder, item.item_id, meta)
            # Same partition as the catalogue record, so an item's vector records stay in
            # order.
            pending.append(
                await self.item_vectors.send(
                    key=item.item_id.encode(),
                    value=encode_value(record.vector),
                    partition=p,
                    timestamp=meta["ts"] / 1000,
                )
            )
        await self.dead_letters.send_all(rejected, AGENT)
        for p, batch in moves.items():
            pending.append(
                await self.item_deltas.send(
                    key=str(p).encode(),
                    value=orjson.dumps(batch),
                    partition=p,
                    headers=[(HEADER, RECATEGORIZE)],
                )
            )
        await self.publisher.write(writes)
        if pending:
            await asyncio.gather(*pending)
