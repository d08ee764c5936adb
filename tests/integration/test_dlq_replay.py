"""Poison -> dead-letter -> fix -> `kapparec dlq replay` -> processed, on the real broker."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
import redis
from click.testing import CliRunner
from confluent_kafka import Producer

from agents.cli import main
from agents.producer import produce_raw, producer_config
from agents.redelivery import replay_dead_letters
from infra.workers import WorkerProcess
from schemas.dead_letter import DeadLetter
from streams.partitioning import partition_for
from streams.redelivery import Selection
from streams.serving import Keys
from streams.settings import Settings, to_env
from streams.topics import build_topics
from tests.integration.test_hostile_ingest import read_all
from tests.integration.test_pipeline import drain

T0 = 1_570_000_000_000
MISKEYED = orjson.dumps(
    {"event_id": "m1", "type": "purchase", "user_id": "u9", "item_id": "i9", "ts": T0}
)


def rekey(key: bytes | None, value: bytes | None, letter: DeadLetter) -> tuple[bytes, bytes] | None:
    """Fix-up hook: key the record by its user id; leave what is not JSON where it is."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return str(event["user_id"]).encode(), value or b""


@pytest.fixture
def settings(fast_settings: Callable[..., Settings]) -> Settings:
    """Topics of their own."""
    return fast_settings()


def replay_cli(settings: Settings, *args: str) -> str:
    """Run `kapparec dlq replay ARGS` in-process with ``settings`` as the environment."""
    result = CliRunner().invoke(main, ["dlq", "replay", *args], env=to_env(settings))
    assert result.exit_code == 0, result.output
    return result.output


def test_fixed_dead_letters_are_replayed_once_and_processed(
    settings: Settings, worker: WorkerProcess
) -> None:
    topics = build_topics(settings)
    dlq = topics.interactions.dead_letter or ""
    produce_raw(settings, topics.interactions.name, b"wrong-key", MISKEYED)
    produce_raw(settings, topics.interactions.name, b"u9", b"{broken")
    drain(settings, worker)
    letters = [DeadLetter.from_bytes(m.value()) for m in read_all(settings, dlq, 2, timeout=30)]
    assert sorted(d.reason for d in letters) == ["key_mismatch", "not_json"]
    # the same source record dead-lettered twice (a batch redone after a crash)
    miskeyed = next(d for d in letters if d.reason == "key_mismatch")
    produce_raw(settings, dlq, miskeyed.key, miskeyed.to_bytes())

    # unfixed, nothing is worth sending: both would be rejected again
    out = replay_cli(settings, "--dry-run")
    assert "would send 0" in out and "key_mismatch: 1" in out and "not_json: 1" in out

    # the fix-up hook repairs the key; only that reason is selected
    out = replay_cli(
        settings,
        "--reason",
        "key_mismatch",
        "--fix",
        "tests.integration.test_dlq_replay:rekey",
    )
    assert "sent 1" in out, out
    assert "same source record seen before in this run: 1" in out
    assert "not matching --reason/--since: 1" in out
    drain(settings, worker)

    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        record = r.get(keys.user("u9"))
    finally:
        r.close()
    assert record is not None, "the replayed event was not processed"
    assert orjson.loads(record)["recent"] == ["i9"]
    # nothing new was dead-lettered by the replay
    assert len(read_all(settings, dlq, 4, timeout=5)) == 3
    assert worker.alive, worker.tail()


def test_since_in_the_future_selects_nothing(settings: Settings, worker: WorkerProcess) -> None:
    topics = build_topics(settings)
    produce_raw(settings, topics.interactions.name, b"u1", b"[]")
    drain(settings, worker)
    summary = replay_dead_letters(settings, selection=Selection(since_ms=2**53), dry_run=True)
    assert (summary.read, summary.filtered_out, sum(summary.sent.values())) == (1, 1, 0)


def test_an_event_on_the_wrong_partition_is_dead_lettered_then_replayed_to_its_own(
    settings: Settings, worker: WorkerProcess
) -> None:
    """A producer that partitions otherwise than by murmur2: the user's later events
    are neither hidden by its offset nor lost; replayed, it lands where it belongs."""
    topics = build_topics(settings)
    dlq = topics.interactions.dead_letter or ""
    owner = partition_for("u7", settings.partitions)
    stray = (owner + 1) % settings.partitions
    event = {"event_id": "w1", "type": "purchase", "user_id": "u7", "item_id": "i7", "ts": T0}
    producer = Producer(producer_config(settings))
    # Offsets: the stray record's partition is given a few records first, so its offset
    # is above the user's next one on its own partition.
    for _ in range(3):
        producer.produce(topics.interactions.name, b"{}", b"x", partition=stray)
    producer.produce(topics.interactions.name, orjson.dumps(event), b"u7", partition=stray)
    later = {**event, "event_id": "w2", "type": "view", "item_id": "i8", "ts": T0 + 1}
    producer.produce(topics.interactions.name, orjson.dumps(later), b"u7", partition=owner)
    assert producer.flush(30) == 0
    drain(settings, worker)
    letters = [DeadLetter.from_bytes(m.value()) for m in read_all(settings, dlq, 4, timeout=30)]
    wrong = [d for d in letters if d.reason == "wrong_partition"]
    assert len(wrong) == 1 and wrong[0].original == orjson.dumps(event), letters
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert orjson.loads(r.get(keys.user("u7")) or b"{}")["recent"] == ["i8"]
        assert "sent 1" in replay_cli(settings, "--reason", "wrong_partition")
        drain(settings, worker)
        assert sorted(orjson.loads(r.get(keys.user("u7")) or b"{}")["recent"]) == ["i7", "i8"]
    finally:
        r.close()
    assert worker.alive, worker.tail()


def test_headers_travel_into_the_dead_letter_and_back(
    settings: Settings, worker: WorkerProcess
) -> None:
    topics = build_topics(settings)
    source, dlq = topics.interactions.name, topics.interactions.dead_letter or ""
    headers = [("traceparent", b"00-abc-01"), ("empty", None)]
    producer = Producer(producer_config(settings))
    producer.produce(source, MISKEYED, b"wrong-key", headers=headers, timestamp=T0 + 5)
    assert producer.flush(30) == 0
    drain(settings, worker)
    [letter] = [DeadLetter.from_bytes(m.value()) for m in read_all(settings, dlq, 1, timeout=30)]
    assert letter.headers == tuple(headers) and letter.timestamp == T0 + 5
    out = replay_cli(settings, "--fix", "tests.integration.test_dlq_replay:rekey")
    assert "sent 1" in out, out
    resent = [m for m in read_all(settings, source, 2, timeout=30) if m.key() == b"u9"]
    assert len(resent) == 1 and resent[0].headers() == headers
