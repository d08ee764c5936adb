"""Catalog ingest: item metadata into a GlobalTable (every worker filters with it) and Redis,
and the item's content vector into the item-vectors topic.

The content vector is written here, by the owner of the item's catalogue partition, so a
new item reaches every worker's HNSW replica (and so the similar-items lists) before
anyone touched it. The vector is a pure function of the record (``ContentEncoder`` with
the shared dimension and seed), so a replay writes the same records again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from agents.control import HEADER, RECATEGORIZE
from agents.dead_letters import DeadLetters
from agents.publisher import Publisher
from agents.tables import put
from schemas.codec import decode_catalog
from schemas.errors import DecodeError
from streams.catalog import merge_record
from streams.models.content import ContentEncoder
from streams.models.replica import content_encoder, content_record, encode_value
from streams.partitioning import partition_for
from streams.settings import Settings

AGENT = "ingest_catalog"


@dataclass
class IngestCatalog:
    """Handles one raw catalog message at a time (catalog traffic is light)."""

    settings: Settings
    catalog: Any  # faust GlobalTable[str, dict]
    dead_letters: DeadLetters
    publisher: Publisher
    item_deltas: faust.TopicT
    item_vectors: faust.TopicT
    encoder: ContentEncoder = field(default_factory=content_encoder)
    _sent: list[Any] = field(default_factory=list)

    async def handle_batch(self, events: Sequence[Any]) -> None:
        """Handle each record, then wait until every vector record it sent is durable."""
        for event in events:
            await self.handle(event)
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)

    async def handle(self, event: Any) -> None:
        """Decode, then store the item's metadata, or dead-letter the record."""
        msg = event.message
        try:
            item = decode_catalog(msg.value, self.settings.max_event_bytes)
            if msg.key != item.item_id.encode():
                raise DecodeError(
                    "key_mismatch", f"message key {msg.key!r} must equal item_id", "item_id"
                )
        except DecodeError as exc:
            await self.dead_letters.send_all([(event, exc)], AGENT)
            return
        before = self.catalog.get(item.item_id)
        meta = merge_record(before, item)
        if meta is None:
            return
        await put(self.catalog, msg.partition, item.item_id, meta)
        category = meta.get("category")
        if category and category != (before or {}).get("category"):
            # The item side offers the item again under its category (see recategorize).
            p = partition_for(item.item_id, self.settings.partitions)
            move = orjson.dumps([[item.item_id, category]])
            await (
                await self.item_deltas.send(
                    key=str(p).encode(), value=move, partition=p, headers=[(HEADER, RECATEGORIZE)]
                )
            )
        key = self.publisher.keys.item_meta(item.item_id)
        await self.publisher.write([(key, orjson.dumps(meta), self.settings.item_ttl_s)])
        record = content_record(self.encoder, item.item_id, meta)
        # Same partition as the catalogue record, so an item's vector records stay in order;
        # the send is awaited once per batch (handle_batch), not once per record.
        self._sent.append(
            await self.item_vectors.send(
                key=item.item_id.encode(),
                value=encode_value(record.vector),
                partition=partition_for(item.item_id, self.settings.partitions),
                timestamp=meta["ts"] / 1000,
            )
        )
