"""Consumer lag of a version's consumer group: how far its workers are behind the log."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from streams.settings import Settings
from streams.topics import TopicSpec, build_topics


def input_topics(settings: Settings) -> list[TopicSpec]:
    """Topics the workers of this version consume."""
    t = build_topics(settings)
    return [t.interactions, t.catalog, t.item_deltas, t.trending_partials]


def consumer_lag(bootstrap: str, group: str, topics: Iterable[TopicSpec],
                 timeout: float = 10.0) -> dict[str, int]:
    """Messages not yet committed by ``group``, per topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        committed = consumer.committed(tps, timeout=timeout)
        lag: dict[str, int] = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout)
            done = tp.offset if tp.offset >= 0 else low
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - done)
        return lag
    finally:
        consumer.close()


def wait_caught_up(settings: Settings, timeout: float, poll_s: float = 1.0,
                   on_poll: object = None) -> dict[str, int]:
    """Block until the version's lag is zero on every input topic twice in a row."""
    deadline = time.monotonic() + timeout
    zero_seen = 0
    lag: dict[str, int] = {}
    while time.monotonic() < deadline:
        lag = consumer_lag(settings.kafka_bootstrap, settings.app_id, input_topics(settings))
        if callable(on_poll):
            on_poll(lag)
        zero_seen = zero_seen + 1 if sum(lag.values()) == 0 else 0
        if zero_seen >= 2:
            return lag
        time.sleep(poll_s)
    raise TimeoutError(f"workers of {settings.app_id} still behind after {timeout:.0f}s: {lag}")
