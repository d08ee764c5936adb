"""The ``recs-out`` stream: every user list written to Redis, also sent to Kafka.

Key = user id, value = exactly the record stored under ``<ns>:v<N>:user:<id>`` (it
carries version, variant, computed_at, items and recent), so an e-mail or CRM consumer
needs no Redis access. Sends are awaited, so a list is on the topic before the input
batch that produced it is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import faust


class RecsOut:
    """Sends published user records to the ``recs-out`` topic."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.topic = app.topic(
            topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        self.sent = 0

    async def send_all(self, records: Mapping[str, bytes]) -> None:
        """Send ``{user_id: record}`` and wait until the broker has them all."""
        if not records:
            return
        futures = [await self.topic.send(key=u.encode(), value=r) for u, r in records.items()]
        await asyncio.gather(*futures)
        self.sent += len(futures)
