"""True end offsets against the real broker, with multi-record batches.

The embedded broker answers ``ListOffsets`` with the last batch's base offset + 1; table
recovery and the item-vector replica need the true end (see agents/log_ends.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer, TopicPartition

from agents.admin import ensure_topics
from agents.log_ends import fetched_ends, plain_consumer
from streams.settings import Settings
from streams.topics import TopicSpec


def test_fetched_ends_are_the_true_ends_of_multi_record_batches(
    make_settings: Callable[..., Settings], namespace: str
) -> None:
    settings = make_settings()
    name = f"{namespace}.ends"
    ensure_topics(settings.kafka_bootstrap, [TopicSpec(name, partitions=3, key="k")])
    counts = {0: 100, 1: 1, 2: 0}  # a 100-record batch, a single record, an empty partition

    async def run() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=100)
        await producer.start()
        try:
            sends = [
                await producer.send(name, str(n).encode(), partition=p)
                for p, count in counts.items()
                for n in range(count)
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        tps = [TopicPartition(name, p) for p in counts]
        consumer = plain_consumer(settings, "ends-test")
        await consumer.start()
        try:
            listed = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return listed, await fetched_ends(lambda: plain_consumer(settings, "ends-probe"), listed)

    listed, true = asyncio.run(run())
    assert {tp.partition: end for tp, end in true.items()} == counts
    # Never below what the broker listed (on a correct broker the two are equal).
    assert all(true[tp] >= listed[tp] for tp in listed)
