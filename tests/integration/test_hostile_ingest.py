"""Ten thousand hostile payloads through the real ingest: all dead-lettered, worker unharmed."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from agents.control import HEADER, REFRESH
from agents.producer import produce, producer_config, send
from infra.workers import WorkerProcess
from schemas.codec import encode as encode_event
from schemas.dead_letter import DeadLetter
from schemas.events import CatalogItem, Interaction
from streams.serving import Keys
from streams.settings import Settings
from streams.topics import build_topics
from tests.integration.hostile import Payload, expected_reason, hostile_payloads
from tests.integration.test_pipeline import drain

HOSTILE = 10_000
OVERSIZED = 100
T0 = 1_570_000_000_000


@pytest.fixture
def settings(fast_settings: Callable[..., Settings]) -> Settings:
    """Large ingest batches, topics of their own."""
    return fast_settings(batch_within_s=0.05)


def produce_bulk(settings: Settings, topic: str, payloads: list[Payload]) -> None:
    """Send raw (key, value) pairs as fast as the client allows; every one must be delivered."""
    producer = Producer(producer_config(settings))
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for key, value in payloads:
        send(producer, topic, key, value, None, on_delivery)
    assert producer.flush(120) == 0, "not all hostile payloads were delivered"
    assert not failed, failed[:3]


def read_all(settings: Settings, topic: str, expected: int, timeout: float = 120.0) -> list[Any]:
    """Every record of ``topic`` (all partitions, from the start), until ``expected`` arrived."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": "t-dlq-read"}
        | {"enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in consumer.consume(5_000, timeout=0.5) if m.error() is None]
        # a short extra wait: more than expected would be a defect too
        out += [m for m in consumer.consume(5_000, timeout=1.0) if m.error() is None]
        return out
    finally:
        consumer.close()


def test_hostile_payloads_all_reach_dead_letter(settings: Settings, worker: WorkerProcess) -> None:
    """Every hostile payload is dead-lettered with the contract's reason; a good one follows."""
    payloads = hostile_payloads(HOSTILE, OVERSIZED, settings.max_event_bytes)
    want = Counter(expected_reason(p, settings.max_event_bytes) for p in payloads)
    assert None not in want and sum(want.values()) == HOSTILE
    topics = build_topics(settings)
    started = time.monotonic()
    produce_bulk(settings, topics.interactions.name, payloads)
    good = Interaction("after-the-storm", "view", "survivor", "item-1", T0)
    assert produce(settings, [good], progress=False).ok
    drain(settings, worker, timeout=300)
    elapsed = time.monotonic() - started

    letters = read_all(settings, topics.interactions.dead_letter or "", HOSTILE)
    envelopes = [DeadLetter.from_bytes(m.value()) for m in letters]
    got = Counter(e.reason for e in envelopes)
    print(f"\n{HOSTILE} hostile payloads dead-lettered in {elapsed:.1f}s; by reason: {dict(got)}")
    assert got == want
    # each record once, with its exact original bytes and key
    assert Counter((e.key, e.original) for e in envelopes) == Counter(payloads)
    assert all(e.error and e.source_topic == topics.interactions.name for e in envelopes)
    assert worker.alive, worker.tail()

    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert r.get(keys.user("survivor")) is not None, "the good event was not processed"
        # nothing a hostile payload carried reached the serving copy
        assert {k.decode() for k in r.scan_iter(match=keys.prefix + "user:*")} == {
            keys.user("survivor")
        }
    finally:
        r.close()


def test_records_too_large_to_dead_letter_whole_are_described(
    settings: Settings, worker: WorkerProcess
) -> None:
    """A record the broker took can be too large once base64 in an envelope: the worker
    dead-letters it with the length and digest of what it cannot carry, and goes on."""
    topics = build_topics(settings)
    good = Interaction("after-the-giants", "view", "survivor", "item-1", T0)
    big_value = b'{"context": "' + b"x" * 760_000 + b'"}'
    big_key = b"\x00" * 300_000  # a valid event under a key that is not its user
    payloads = [(b"u1", big_value), (big_key, encode_event(good))]
    produce_bulk(settings, topics.interactions.name, payloads)
    assert produce(settings, [good], progress=False).ok
    drain(settings, worker, timeout=120)

    letters = read_all(settings, topics.interactions.dead_letter or "", 2)
    by_reason = {e.reason: (m, e) for m in letters for e in [DeadLetter.from_bytes(m.value())]}
    assert sorted(by_reason) == ["key_mismatch", "oversized"], [e for _, e in by_reason.values()]
    msg, oversized = by_reason["oversized"]
    assert oversized.original is None and oversized.key == b"u1" and msg.key() == b"u1"
    assert oversized.dropped == {
        "original": {"len": len(big_value), "sha256": hashlib.sha256(big_value).hexdigest()}
    }
    msg, mismatch = by_reason["key_mismatch"]
    assert mismatch.key == big_key and mismatch.dropped is None  # 400 kB in base64: fits
    assert msg.key() == hashlib.sha256(big_key).hexdigest().encode()
    assert worker.alive, worker.tail()
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert r.get(Keys(settings.namespace, settings.version).user("survivor")) is not None
    finally:
        r.close()


def test_control_headers_on_producers_records_are_data(
    settings: Settings, worker: WorkerProcess
) -> None:
    """A null-valued control header (Kafka allows it), or a refresh header on a record
    whose body is an event, does not make a control message: the event is processed."""
    topic = build_topics(settings).interactions.name
    events = [
        Interaction("null-header", "view", "u-null", "item-1", T0),
        Interaction("spoofed-refresh", "view", "u-spoof", "item-2", T0 + 1),
    ]
    headers = [[(HEADER, None)], [(HEADER, REFRESH)]]
    producer = Producer(producer_config(settings))
    for ev, hdrs in zip(events, headers, strict=True):
        producer.produce(topic, encode_event(ev), ev.user_id.encode(), headers=hdrs)
    assert producer.flush(30) == 0
    drain(settings, worker, timeout=120)
    assert worker.alive, worker.tail()
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert r.get(keys.user("u-null")) is not None
        assert r.get(keys.user("u-spoof")) is not None
    finally:
        r.close()


def test_records_dated_far_ahead_are_dead_lettered(
    settings: Settings, worker: WorkerProcess
) -> None:
    """One event dated centuries ahead would decay every trending score to zero for good."""
    topics = build_topics(settings)
    far = 2**53 - 1
    ahead = Interaction("ahead", "purchase", "u-ahead", "item-9", far)
    item = CatalogItem("item-9", far, title="from the future", category="x")
    good = Interaction("on-time", "view", "survivor", "item-1", T0)
    assert produce(settings, [ahead, item, good], progress=False).ok
    drain(settings, worker, timeout=120)
    letters = [
        DeadLetter.from_bytes(m.value())
        for topic in (topics.interactions, topics.catalog)
        for m in read_all(settings, topic.dead_letter or "", 1, timeout=30)
    ]
    assert [(d.reason, d.field) for d in letters] == [("bad_value", "ts")] * 2, letters
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert r.get(keys.user("survivor")) is not None
        assert r.get(keys.user("u-ahead")) is None and r.get(keys.item_meta("item-9")) is None
    finally:
        r.close()
    assert worker.alive, worker.tail()
