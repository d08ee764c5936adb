"""True end offsets of partitions for aiokafka clients, and Faust's table recovery.

Some Kafka-protocol brokers (Tansu, the embedded one) answer ``ListOffsets`` with the base
offset of a partition's last record *batch* + 1, while a fetch response carries the true
high watermark. Faust recovers a table by reading its changelog up to the ``ListOffsets``
answer, so with multi-record batches it would stop short of the last batch's records and
lose them. Here the answer is corrected by one fetch from ``end - 1``: its response holds
the true high watermark. On a broker that answers correctly this costs one short fetch and
changes nothing.

(:func:`agents.lag.log_ends` is the same correction for librdkafka clients.)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.faust_patch import replace
from agents.kafka_security import aiokafka_options
from streams.settings import Settings

ConsumerFactory = Callable[[], AIOKafkaConsumer]

_FACTORY = "_kapparec_end_probe"  # attribute of the Faust app: builds a probe consumer


def plain_consumer(settings: Settings, client_id: str) -> AIOKafkaConsumer:
    """An unstarted consumer without a group, with the workers' connection settings."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=client_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **aiokafka_options(settings),
    )


async def fetched_ends(
    make_consumer: ConsumerFactory, ends: Mapping[Any, int], timeout_s: float = 10.0
) -> dict[Any, int]:
    """``ends`` (from ``end_offsets``) corrected to the true end of every partition.

    ``make_consumer`` builds an unstarted consumer without a group. Raises TimeoutError
    if the broker does not answer the probe fetch within ``timeout_s``.
    """
    true = dict(ends)
    probe = {tp: end for tp, end in ends.items() if end > 0}
    if not probe:
        return true
    consumer = make_consumer()
    await consumer.start()
    try:
        consumer.assign(list(probe))
        for tp, end in probe.items():
            consumer.seek(tp, end - 1)
        pending = set(probe)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch response for {sorted(map(tuple, pending))}")
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                if records:
                    true[tp] = max(true[tp], records[-1].offset + 1)
            for tp in list(pending):
                high = consumer.highwater(tp)
                if high is not None:
                    true[tp] = max(true[tp], high)
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return true


def _corrected(original: Callable[[Any, Any], Awaitable[Mapping[Any, int]]]) -> Any:
    async def highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        ends = await original(self, partitions)
        factory = getattr(self.app, _FACTORY, None)
        if factory is None or self.consumer.in_transaction:
            return ends
        return await fetched_ends(factory, ends)

    return highwaters


def install(app: Any, make_consumer: ConsumerFactory) -> None:
    """Make ``app``'s table recovery read every changelog to its true end."""
    setattr(app, _FACTORY, make_consumer)
    replace(faust_aiokafka.AIOKafkaConsumerThread, _corrected, "_highwaters")
