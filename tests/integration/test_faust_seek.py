"""The seek Faust does on every assignment, against the real broker.

A partition the group never committed must go back to its beginning; one with a
committed offset goes to that offset (see agents/faust_seek.py for why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from agents.admin import ensure_topics
from agents.faust_seek import seek_uncommitted_to_beginning
from streams.settings import Settings
from streams.topics import TopicSpec


def test_uncommitted_partition_goes_back_to_its_beginning(
    make_settings: Callable[..., Settings], namespace: str
) -> None:
    settings = make_settings()
    name = f"{namespace}.seek"
    ensure_topics(settings.kafka_bootstrap, [TopicSpec(name, partitions=2, key="k")])
    fresh, committed = TopicPartition(name, 0), TopicPartition(name, 1)

    async def run() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            for p in range(2):
                for n in range(5):
                    await producer.send_and_wait(name, str(n).encode(), partition=p)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{namespace}-group",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([fresh, committed])
            await consumer.commit({committed: OffsetAndMetadata(3, "")})
            read: dict[TopicPartition, int] = {}
            while sum(read.values()) < 7:  # 5 from p0, 2 from p1: both positions moved
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    read[tp] = read.get(tp, 0) + len(records)
            assert await consumer.position(fresh) == 5
            await seek_uncommitted_to_beginning(consumer, lambda topic: False)
            return await consumer.position(fresh), await consumer.position(committed)
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == (0, 3)
