"""Dead-letter writer: the rejected record, why, and where it came from; sends are awaited."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import faust

from agents.faust_batches import header_pairs
from agents.metrics import WORKER
from schemas.dead_letter import DeadLetter, letter_key
from schemas.errors import DecodeError

log = logging.getLogger(__name__)


class DeadLetters:
    """Writes dead-letter envelopes to the topic paired with each source topic."""

    def __init__(self, app: faust.App, pairs: Mapping[str, str]) -> None:
        self._topics = {
            source: app.topic(
                dlq, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            )
            for source, dlq in pairs.items()
        }
        self.counts: Counter[str] = Counter()

    async def send(self, msg: Any, error: DecodeError, agent: str) -> Awaitable[Any]:
        """Queue the envelope for the record ``msg``; await the returned future for delivery.

        ``msg`` has ``topic``, ``partition``, ``offset``, ``key`` and ``value`` (a Faust
        message, or a record of a batch message: see ``agents.faust_batches``).
        """
        letter = DeadLetter(
            reason=error.code,
            error=str(error.args[0]) if error.args else error.code,
            field=error.field,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            agent=agent,
            dead_lettered_at=int(time.time() * 1000),
            original=msg.value,
            key=msg.key,
            headers=header_pairs(msg.headers),
            timestamp=_timestamp_ms(msg.timestamp),
        )
        self.counts[error.code] += 1
        WORKER.dead_letter(msg.topic, error.code)
        log.info("dead-letter %s %s[%d]@%d: %s", agent, msg.topic, msg.partition, msg.offset, error)
        value, dropped = letter.encode()
        if dropped:
            log.warning(
                "dead-letter %s[%d]@%d: too large to carry its %s; length and SHA-256 kept",
                msg.topic,
                msg.partition,
                msg.offset,
                " and ".join(dropped),
            )
        return await self._topics[msg.topic].send(key=letter_key(msg.key), value=value)

    async def send_all(self, rejected: Sequence[tuple[Any, DecodeError]], agent: str) -> None:
        """Send every rejected record and wait until the broker has them all."""
        if not rejected:
            return
        futures = [await self.send(msg, error, agent) for msg, error in rejected]
        await asyncio.gather(*futures)


def _timestamp_ms(ts: float | int | None) -> int | None:
    """aiokafka's records carry epoch ms; Faust's messages, epoch seconds as a float."""
    if ts is None:
        return None
    return round(ts * 1000) if isinstance(ts, float) else int(ts)
