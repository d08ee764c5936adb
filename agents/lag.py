"""Consumer lag of a version's consumer group: how far its workers are behind the log."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, TopicPartition

from streams.security import librdkafka_security
from streams.settings import Settings
from streams.topics import TopicSpec, build_topics


def input_topics(settings: Settings) -> list[TopicSpec]:
    """Topics the workers of this version consume."""
    return [topic for stage in stages(settings) for topic in stage]


def stages(settings: Settings) -> list[list[TopicSpec]]:
    """The input topics in pipeline order: each stage's agents write what the next read
    before they commit their own input."""
    t = build_topics(settings)
    sources = [t.interactions, t.catalog]
    derived = [t.item_deltas]
    if settings.split:
        # the experiment agents run only while an A/B test is set up
        sources.append(t.impressions)
        derived.append(t.outcomes)
    return [sources, derived, [t.trending_partials]]


def log_ends(
    consumer: Consumer,
    highs: dict[tuple[str, int], int],
    quiet_s: float = 0.2,
    limit_s: float = 2.0,
) -> dict[tuple[str, int], int]:
    """True end offsets, given the broker's high watermarks ``highs``.

    Some brokers (Tansu) report the high watermark as the base offset of the last record
    batch + 1, with the rest of that batch beyond it. Fetching from ``high - 1`` returns
    the whole last batch and so the true end. On a broker that reports the true end this
    costs one short fetch and changes nothing.
    """
    ends = dict(highs)
    probe = [TopicPartition(t, p, h - 1) for (t, p), h in highs.items() if h > 0]
    if not probe:
        return ends
    consumer.assign(probe)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        records = consumer.consume(num_messages=10_000, timeout=quiet_s)
        if not records:
            break
        for m in records:
            if m.error() is None:
                key = (m.topic(), m.partition())
                ends[key] = max(ends[key], m.offset() + 1)
    consumer.unassign()
    return ends


def consumer_lag(
    bootstrap: str,
    group: str,
    topics: Iterable[TopicSpec],
    timeout: float = 10.0,
    security: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Messages not yet processed (committed) by ``group``, per topic.

    ``security``: librdkafka options from ``streams.security.librdkafka_security``.
    """
    return _lag_snapshot(bootstrap, group, topics, timeout, security)[0]


def _lag_snapshot(
    bootstrap: str,
    group: str,
    topics: Iterable[TopicSpec],
    timeout: float,
    security: Mapping[str, str] | None,
) -> tuple[dict[str, int], float]:
    """The lag per topic, and the monotonic time by which its committed offsets were read."""
    consumer = _consumer(bootstrap, group, security)
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        done: dict[tuple[str, int], int] = {}
        highs: dict[tuple[str, int], int] = {}
        committed = consumer.committed(tps, timeout=timeout)
        read_at = time.monotonic()
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            key = (tp.topic, tp.partition)
            done[key] = tp.offset if tp.offset >= 0 else low
            highs[key] = high
        # Only a partition that looks caught up needs its true end checked.
        suspect = {k: h for k, h in highs.items() if done[k] >= h - 1}
        ends = {**highs, **log_ends(consumer, suspect)}
        lag: dict[str, int] = {}
        for key, end in ends.items():
            lag[key[0]] = lag.get(key[0], 0) + max(0, end - done[key])
        return lag, read_at
    finally:
        consumer.close()


def wait_caught_up(
    settings: Settings, timeout: float, poll_s: float = 0.5, on_poll: object = None
) -> dict[str, int]:
    """Block until the version's lag is zero on every input topic twice in a row."""
    return _caught_up(settings, timeout, poll_s, on_poll)[0]


def caught_up_at(settings: Settings, timeout: float, poll_s: float = 0.5) -> float:
    """The monotonic time by which the workers had done all the work in the log.

    Every stage writes its outputs before it commits its input, and a snapshot reads the
    committed offsets before the log ends. So a snapshot with no lag on any input topic
    shows that all the work was done when its committed offsets were read. That time is
    returned, not the time the next snapshot confirmed it: a snapshot takes about 0.4 s
    here, a tenth of a short bench run.
    """
    return _caught_up(settings, timeout, poll_s, None)[1]


def wait_past_now(
    settings: Settings, timeout: float, poll_s: float = 0.5, on_poll: object = None
) -> None:
    """Block until the workers have done all the work of the records in the log now.

    Unlike :func:`wait_caught_up` it ends while more records keep coming (a replay
    beside live traffic, whose lag is never zero): stage by stage, it takes the log's
    end offsets and waits until the group's committed offsets reach them. Each stage
    writes its outputs before it commits its input, so once a stage has passed its
    marks, the next stage's ends hold everything derived from them. ``on_poll`` gets the
    records left before the marks, per topic.
    """
    deadline = time.monotonic() + timeout
    security = librdkafka_security(settings)
    left: dict[str, int] = {}
    for topics in stages(settings):
        marks = _ends(settings.kafka_bootstrap, settings.app_id, topics, security)
        while True:
            done = _committed(settings.kafka_bootstrap, settings.app_id, topics, security)
            left = {}
            for (topic, p), mark in marks.items():
                left[topic] = left.get(topic, 0) + max(0, mark - done[(topic, p)])
            if callable(on_poll):
                on_poll(left)
            if not any(left.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"workers of {settings.app_id} still behind after {timeout:.0f}s: {left}"
                )
            time.sleep(poll_s)


def _consumer(bootstrap: str, group: str, security: Mapping[str, str] | None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            **(security or {}),
        }
    )


def _ends(
    bootstrap: str, group: str, topics: Iterable[TopicSpec], security: Mapping[str, str] | None
) -> dict[tuple[str, int], int]:
    consumer = _consumer(bootstrap, group, security)
    try:
        highs = {
            (t.name, p): consumer.get_watermark_offsets(TopicPartition(t.name, p), timeout=10)[1]
            for t in topics
            for p in range(t.partitions)
        }
        return log_ends(consumer, highs)
    finally:
        consumer.close()


def _committed(
    bootstrap: str, group: str, topics: Iterable[TopicSpec], security: Mapping[str, str] | None
) -> dict[tuple[str, int], int]:
    """Committed offsets; a partition without one counts from its low watermark."""
    consumer = _consumer(bootstrap, group, security)
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        out = {}
        for tp in consumer.committed(tps, timeout=10):
            low = consumer.get_watermark_offsets(tp, timeout=10)[0]
            out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else low
        return out
    finally:
        consumer.close()


def _caught_up(
    settings: Settings, timeout: float, poll_s: float, on_poll: object
) -> tuple[dict[str, int], float]:
    deadline = time.monotonic() + timeout
    zero_seen = 0
    first_zero_at = 0.0
    lag: dict[str, int] = {}
    while time.monotonic() < deadline:
        lag, read_at = _lag_snapshot(
            settings.kafka_bootstrap,
            settings.app_id,
            input_topics(settings),
            10.0,
            librdkafka_security(settings),
        )
        if callable(on_poll):
            on_poll(lag)
        if sum(lag.values()) == 0:
            zero_seen += 1
            if zero_seen == 1:
                first_zero_at = read_at
        else:
            zero_seen = 0
        if zero_seen >= 2:
            return lag, first_zero_at
        time.sleep(poll_s)
    raise TimeoutError(f"workers of {settings.app_id} still behind after {timeout:.0f}s: {lag}")
