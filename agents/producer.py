"""The producer: schema events (or raw bytes) into the source topics, with delivery accounting.

Interactions and impressions go to their topics keyed by ``user_id``, catalog records to
``catalog`` keyed by ``item_id``; the Kafka message timestamp is the event's own time, so a
bulk load of history keeps its original timeline. Nothing is dropped silently: every record
ends up counted as delivered (per topic), failed (per broker error) or rejected at the
source (per reason), and :class:`ProduceSummary` prints that account.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from tqdm import tqdm

from agents.admin import KAFKA_SETTING, ServiceUnavailable
from schemas.codec import encode
from schemas.errors import KapparecError
from schemas.events import CatalogItem, Impression, Interaction
from streams.security import librdkafka_security
from streams.settings import Settings, require
from streams.sources.records import SourceError, SourceRecord
from streams.topics import Topics, build_topics

log = logging.getLogger(__name__)
_kafka_log = logging.getLogger("kapparec.kafka")
_kafka_log.addHandler(logging.NullHandler())

# The consumers are Faust/aiokafka, which decode lz4/zstd/snappy only when the optional
# cramjam package is installed; gzip is built in. Prefer zstd when the consumers can read it.
FALLBACK_COMPRESSION = "gzip"
PREFERRED_COMPRESSION = "zstd"
BASE_CONFIG: dict[str, Any] = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "acks": "all",
    "enable.idempotence": True,  # broker retries must not duplicate or reorder a user's events
    # Same hash as the Java client and aiokafka (streams.partitioning), so every producer
    # puts a user on the same partition; librdkafka's default (crc32) would not.
    "partitioner": "murmur2_random",
    # A topic auto-created by the broker gets its default partition count, not the registry's.
    "allow.auto.create.topics": False,
}
PROGRESS_EVERY = 1_000
FLUSH_TIMEOUT_S = 60.0
METADATA_TIMEOUT_S = 10.0


class ProduceError(KapparecError):
    """Producing stopped or a message was not delivered; ``summary`` tells how far it got."""

    def __init__(self, message: str, summary: ProduceSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class TopicMissing(ProduceError):
    """A source topic does not exist; topics are created by ``agents.admin.ensure_topics``."""


@dataclass(frozen=True, slots=True)
class ProduceSummary:
    """What happened to every record: delivered per topic, failed and rejected per reason."""

    sent: dict[str, int]
    delivered: dict[str, int]
    failed: dict[str, int]
    rejected: dict[str, int]
    elapsed_s: float
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def delivered_total(self) -> int:
        """Messages the broker acknowledged."""
        return sum(self.delivered.values())

    @property
    def rate(self) -> float:
        """Delivered messages per second of wall time."""
        return self.delivered_total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when every message sent was delivered (source rejections aside)."""
        return not self.failed and self.delivered_total == sum(self.sent.values())

    def __str__(self) -> str:
        lines = [
            f"delivered {self.delivered_total:,} message(s) in {self.elapsed_s:.2f}s "
            f"({self.rate:,.0f}/s)"
        ]
        lines += [f"  {t}: {n:,}" for t, n in sorted(self.delivered.items())]
        for title, counts in (("failed", self.failed), ("rejected at source", self.rejected)):
            if counts:
                lines.append(f"{title} {sum(counts.values()):,}:")
                lines += [
                    f"  {r}: {n:,}" + (f"  e.g. {self.examples[r]}" if r in self.examples else "")
                    for r, n in sorted(counts.items(), key=lambda kv: -kv[1])
                ]
        return "\n".join(lines)


@dataclass(slots=True)
class _Tally:
    """Counts updated by the main loop and by delivery callbacks (same thread, in poll)."""

    sent: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered[msg.topic() or "?"] += 1
            return
        reason = f"{err.name()}: {err.str()}"
        self.failed[reason] += 1
        self.examples.setdefault(reason, f"topic {msg.topic()} key {msg.key()!r}")

    def reject(self, reason: str, example: str) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, example)

    def summary(self) -> ProduceSummary:
        return ProduceSummary(
            dict(self.sent), dict(self.delivered), dict(self.failed), dict(self.rejected),
            time.monotonic() - self.started, dict(self.examples),
        )  # fmt: skip


def default_compression() -> str:
    """zstd when this environment's aiokafka can decode it, else gzip."""
    try:
        from aiokafka.codec import has_zstd
    except ImportError:
        return FALLBACK_COMPRESSION
    return PREFERRED_COMPRESSION if has_zstd() else FALLBACK_COMPRESSION


def producer_config(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka configuration of the producer; ``overrides`` win."""
    require(settings, "kafka_bootstrap")
    config = {
        **BASE_CONFIG,
        "bootstrap.servers": settings.kafka_bootstrap,
        **librdkafka_security(settings),
        "compression.type": default_compression(),
        "logger": _kafka_log,
        "error_cb": _on_client_error,
    }
    config.update(overrides or {})
    return config


def route(topics: Topics, event: Interaction | Impression | CatalogItem) -> tuple[str, bytes]:
    """Topic name and message key of an event."""
    if isinstance(event, CatalogItem):
        return topics.catalog.name, event.item_id.encode()
    if isinstance(event, Impression):
        return topics.impressions.name, event.user_id.encode()
    return topics.interactions.name, event.user_id.encode()


def produce(
    settings: Settings,
    events: Iterable[SourceRecord],
    *,
    progress: bool = True,
    total: int | None = None,
    limit: int | None = None,
    config: Mapping[str, Any] | None = None,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
) -> ProduceSummary:
    """Send ``events`` in order, wait for delivery, and account for every record.

    ``SourceError`` records are counted as rejected, not sent. ``limit`` caps the messages
    sent; ``total`` sizes the progress bar (shown on a TTY unless ``progress`` is false).
    Raises :class:`TopicMissing` (after flushing what was sent) if a topic does not exist.
    """
    producer = Producer(producer_config(settings, config))
    sender = _Sender(producer, settings)
    bar = tqdm(total=total, unit="ev", disable=None if progress else True, file=sys.stderr)
    try:
        sender.send_all(events, limit, bar)
    except TopicMissing as exc:
        _finish(producer, flush_timeout_s)
        raise TopicMissing(str(exc), sender.tally.summary()) from None
    except BaseException:
        # Interrupted: still hand the broker what is queued, but do not wait long.
        _finish(producer, min(flush_timeout_s, 5.0))
        raise
    finally:
        bar.close()
    _finish(producer, flush_timeout_s)
    return sender.tally.summary()


class _Sender:
    """One produce run: routes, encodes and sends records, counting each outcome."""

    def __init__(self, producer: Producer, settings: Settings) -> None:
        self.producer = producer
        self.settings = settings
        self.topics = build_topics(settings)
        self.known = _topic_names(producer, settings.kafka_bootstrap)
        self.tally = _Tally()

    def send_all(self, events: Iterable[SourceRecord], limit: int | None, bar: tqdm[Any]) -> None:
        seen = sent = 0
        for record in events:
            seen += 1
            if seen % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
                bar.set_postfix(
                    rejected=self.tally.rejected.total(),
                    failed=self.tally.failed.total(),
                    refresh=False,
                )
            if isinstance(record, SourceError):
                self.tally.reject(record.reason, f"{record.source}:{record.line}: {record.detail}")
            elif limit is not None and sent >= limit:
                break
            else:
                sent += self.send(record)
        bar.update(seen % PROGRESS_EVERY)

    def send(self, event: Interaction | Impression | CatalogItem) -> int:
        """Send one event; 1 if it was handed to the producer, 0 if rejected."""
        value = self._encode(event)
        if value is None:
            return 0
        topic, key = route(self.topics, event)
        if topic not in self.known:
            self.known = _require_topic(self.producer, topic, self.settings.kafka_bootstrap)
        send(self.producer, topic, key, value, event.ts, self.tally.on_delivery)
        self.tally.sent[topic] += 1
        return 1

    def _encode(self, event: Interaction | Impression | CatalogItem) -> bytes | None:
        # Refuse here what ingest would dead-letter anyway, and say so in the summary.
        try:
            value = encode(event)
        except orjson.JSONEncodeError as exc:
            self.tally.reject("unencodable", str(exc))
            return None
        limit = self.settings.max_event_bytes
        if len(value) > limit:
            self.tally.reject("oversized", f"{len(value)} bytes > KAPPAREC_MAX_EVENT_BYTES={limit}")
            return None
        return value


def send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    ts: int | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> None:
    """Queue one record, waiting for room when the local queue is full (nothing dropped)."""
    extra = {"headers": list(headers)} if headers else {}
    while True:
        try:
            producer.produce(topic, value, key, timestamp=ts or 0, on_delivery=on_delivery, **extra)
        except BufferError:
            # Local queue full: serve delivery reports until there is room again.
            producer.poll(0.05)
            continue
        producer.poll(0)
        return


def _finish(producer: Producer, timeout_s: float) -> None:
    """Flush; whatever is still queued after the timeout is purged and counted as failed."""
    if producer.flush(timeout_s) > 0:
        producer.purge()
        producer.flush(5.0)


def _topic_names(producer: Producer, bootstrap: str) -> set[str]:
    try:
        metadata = producer.list_topics(timeout=METADATA_TIMEOUT_S)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        reason = err.str() if isinstance(err, KafkaError) else str(exc)
        raise ServiceUnavailable("Kafka", bootstrap, KAFKA_SETTING, reason) from None
    return {name for name, meta in metadata.topics.items() if meta.error is None}


def _require_topic(producer: Producer, topic: str, bootstrap: str) -> set[str]:
    # Fresh metadata before giving up: the topic may have been created after we started.
    names = _topic_names(producer, bootstrap)
    if topic not in names:
        raise TopicMissing(
            f"topic {topic!r} does not exist on {bootstrap}; create the topics first "
            "(`kapparec topics`, or start a worker: it creates them)"
        )
    return names


def _on_client_error(err: KafkaError) -> None:
    # Transient broker errors are retried by librdkafka; a fatal one ends the producer.
    level = logging.ERROR if err.fatal() else logging.WARNING
    log.log(level, "kafka producer: %s", err.str())


def produce_raw(
    settings: Settings,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    timestamp_ms: int | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, int]:
    """Send one message as is (e.g. a poison message) and return its (partition, offset)."""
    producer = Producer(producer_config(settings))
    _require_topic(producer, topic, settings.kafka_bootstrap)
    result: list[tuple[KafkaError | None, Message]] = []
    producer.produce(
        topic,
        value,
        key,
        timestamp=timestamp_ms or 0,
        on_delivery=lambda e, m: result.append((e, m)),
    )
    producer.flush(timeout_s)
    if not result:
        producer.purge()
        raise ProduceError(f"message to {topic!r} not delivered within {timeout_s}s")
    err, msg = result[0]
    if err is not None:
        raise ProduceError(f"message to {topic!r} failed: {err.name()}: {err.str()}")
    return msg.partition() or 0, msg.offset() or 0
