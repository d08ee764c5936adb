"""``kapparec dlq replay``: send dead-lettered records back to their source topic.

The dead-letter topic is read from the start up to its end as of the start of the run,
so records dead-lettered again while the run goes on are not read twice. Each record
is checked with the current decoder first: one that would be rejected again stays where
it is (and is counted by its new reason) unless ``include_invalid`` is set.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from agents.lag import log_ends
from agents.producer import producer_config, send
from schemas.codec import check_record
from schemas.dead_letter import DeadLetter
from schemas.errors import DecodeError, KapparecError
from streams.redelivery import Fix, ReplaySummary, Selection
from streams.settings import Settings, require
from streams.topics import TopicSpec, build_topics

SOURCES = {"interactions": "interaction", "impressions": "impression", "catalog": "catalog_item"}


def _source(settings: Settings, name: str) -> TopicSpec:
    topics = build_topics(settings)
    spec: TopicSpec = getattr(topics, name)
    if spec.dead_letter is None:
        raise KapparecError(f"topic {spec.name!r} has no dead-letter topic")
    return spec


def read_dead_letters(settings: Settings, topic: str, partitions: int) -> Iterator[Message]:
    """Every record of ``topic`` from the start up to its end as of now."""
    consumer = Consumer(
        {
            **_client_config(settings),
            "group.id": f"{settings.app_id}-dlq-replay-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        highs = {}
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            highs[(topic, p)] = high
        ends = log_ends(consumer, highs)
        todo = {p: ends[(topic, p)] for p in range(partitions) if ends[(topic, p)] > 0}
        # From the first record still kept: after retention deleted the oldest, offset 0
        # would be out of range, and the consumer would go to the end and read nothing.
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1_000, timeout=0.5):
                part, offset = msg.partition(), msg.offset()
                if msg.error() is not None or part not in todo or offset is None:
                    continue
                assert part is not None  # for the type checker: `in todo` ruled None out
                if offset < todo[part]:
                    yield msg
                if offset + 1 >= todo[part]:
                    del todo[part]
        if todo:
            raise KapparecError(f"could not read {topic} to its end within 60 s: {todo}")
    finally:
        consumer.close()


def _client_config(settings: Settings) -> dict[str, Any]:
    config = producer_config(settings)
    keep = ("bootstrap.servers", "logger", "security.", "sasl.", "ssl.")
    return {k: v for k, v in config.items() if k.startswith(keep)}


def replay_dead_letters(
    settings: Settings,
    source: str = "interactions",
    selection: Selection | None = None,
    fix: Fix | None = None,
    dry_run: bool = False,
    include_invalid: bool = False,
) -> ReplaySummary:
    """Send the selected dead letters of ``source`` back; return what happened to each."""
    require(settings, "kafka_bootstrap")
    spec = _source(settings, source)
    summary = ReplaySummary(dry_run=dry_run)
    producer = None if dry_run else Producer(producer_config(settings))
    for msg in read_dead_letters(settings, spec.dead_letter or "", spec.partitions):
        summary.read += 1
        letter = _envelope(msg.value())
        if letter is None:
            summary.unreadable += 1
            continue
        record = _to_resend(letter, selection or Selection(), fix, summary)
        if record is None:
            continue
        try:
            check_record(SOURCES[source], *record, settings.max_event_bytes)
        except DecodeError as exc:
            summary.still_invalid[exc.code] += 1
            if not include_invalid:
                continue
        summary.sent[letter.reason] += 1
        if producer is not None:
            _send(producer, letter.source_topic, record, letter.reason, summary, letter.headers)
    if producer is not None and producer.flush(60) > 0:
        raise KapparecError("replayed records not delivered within 60 s")
    return summary


def _to_resend(
    letter: DeadLetter, selection: Selection, fix: Fix | None, summary: ReplaySummary
) -> tuple[bytes | None, bytes | None] | None:
    """The key and value to send for ``letter``, or ``None`` (counted in ``summary``)."""
    if not selection.matches(letter):
        summary.filtered_out += 1
        return None
    if not summary.first_time(letter):
        return None
    if letter.dropped:
        # Its key or value is known only by length and digest: nothing to send back.
        summary.not_carried += 1
        return None
    if fix is None:
        return letter.key, letter.original
    fixed = fix(letter.key, letter.original, letter)
    if fixed is None:
        summary.kept_by_fix += 1
    return fixed


def _envelope(raw: bytes | None) -> DeadLetter | None:
    try:
        return DeadLetter.from_bytes(raw or b"")
    except (ValueError, KeyError, TypeError):
        return None


def _send(
    producer: Producer,
    topic: str,
    record: tuple[bytes | None, bytes | None],
    reason: str,
    summary: ReplaySummary,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> None:
    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            summary.sent[reason] -= 1
            summary.failed[f"{err.name()}: {err.str()}"] += 1

    key, value = record
    send(producer, topic, key, value, None, on_delivery, headers)
