"""Catalog ingest: item metadata into a GlobalTable (every worker filters with it) and Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from agents.dead_letters import DeadLetters
from agents.publisher import Publisher
from agents.tables import put
from schemas.codec import decode_catalog
from schemas.errors import DecodeError
from streams.catalog import merge_record
from streams.settings import Settings

AGENT = "ingest_catalog"


@dataclass
class IngestCatalog:
    """Handles one raw catalog message at a time (catalog traffic is light)."""

    settings: Settings
    catalog: Any  # faust GlobalTable[str, dict]
    dead_letters: DeadLetters
    publisher: Publisher

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
        meta = merge_record(self.catalog.get(item.item_id), item)
        if meta is None:
            return
        await put(self.catalog, msg.partition, item.item_id, meta)
        key = self.publisher.keys.item_meta(item.item_id)
        await self.publisher.write([(key, orjson.dumps(meta), self.settings.item_ttl_s)])
