"""Replay into a new version beside the live one, then promote: the kappa promise."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.admin import ensure_topics
from agents.control import refresh_when_drained, request_refresh
from agents.lag import wait_caught_up
from agents.producer import produce, producer_config
from agents.versions import VersionError, promote, replay, retire, start_at
from infra.workers import WorkerProcess
from schemas.codec import encode
from schemas.events import CatalogItem, Interaction
from streams.pipeline import LocalPipeline
from streams.serving import Keys
from streams.settings import Settings
from streams.sources import read_rees46
from streams.topics import TABLE_USERS, build_topics
from tests.integration.test_pipeline import assert_lists_match
from tests.integration.test_rebalance import table_keys

REES46 = "rees46-multicategory-2019oct-head/2019-Oct_head17433.csv"


def rees46_head(n: int) -> list[CatalogItem | Interaction]:
    """The first ``n`` interactions of the REES46 slice, with their catalogue records."""
    path = Path(os.environ.get("KAPPAREC_DATA_DIR", "../shared/data")) / REES46
    if not path.exists():
        message = f"REES46 slice not found at {path}; set KAPPAREC_DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out: list[CatalogItem | Interaction] = []
    seen = 0
    for rec in read_rees46(path):
        if isinstance(rec, Interaction):
            seen += 1
            if seen > n:
                break
        if isinstance(rec, CatalogItem | Interaction):
            out.append(rec)
    return out


def _lists(r: redis.Redis, keys: Keys) -> dict[str, list[object]]:
    out = {}
    for key in r.scan_iter(match=keys.prefix + "*", count=1000):
        name = key.decode()[len(keys.prefix) :]
        if name == "meta" or name.startswith("item:"):
            continue
        out[name] = orjson.loads(r.get(key) or b"null")["items"]
    return out


def test_replay_into_v2_is_identical_and_promotion_switches_readers(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    v1 = make_settings(
        topic_prefix=f"{namespace}.", settle_s=1.0, flush_interval_s=0.2, session_timeout_s=6.0
    )
    v2 = dataclasses.replace(v1, version=2)
    for s in (v1, v2):
        ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    events = rees46_head(1500)
    assert produce(v1, events, progress=False).ok
    r = redis.Redis.from_url(v1.redis_url)

    live = WorkerProcess(v1, tmp_path / "v1.log", worker_id="v1")
    try:
        refresh_when_drained(v1, 180)
        assert r.get(Keys(v1.namespace, 1).active) == b"1"  # first version became active
        replay = WorkerProcess(v2, tmp_path / "v2.log", worker_id="v2")
        try:
            refresh_when_drained(v2, 180)
        finally:
            replay.stop()
        # v1 kept serving while v2 was built: the pointer did not move
        assert r.get(Keys(v1.namespace, 1).active) == b"1"
        first, second = _lists(r, Keys(v1.namespace, 1)), _lists(r, Keys(v1.namespace, 2))
        assert first and any(k.startswith("user:") for k in first)
        assert second == first  # the same log gives the same published lists

        assert promote(v1, 2) == 1
        assert r.get(Keys(v1.namespace, 1).active) == b"2"
        old_user = next(k for k in first if k.startswith("user:"))
        ttl = r.ttl(Keys(v1.namespace, 1).prefix + old_user)
        assert 0 < ttl <= v1.version_ttl_s  # the old namespace ages out
        assert r.ttl(Keys(v1.namespace, 2).prefix + old_user) > v1.version_ttl_s
        # catalogue records included, which have no TTL of their own
        old_item = next(r.scan_iter(match=Keys(v1.namespace, 1).item_meta("*")))
        assert r.ttl(Keys(v1.namespace, 2).item_meta(old_item.decode().rsplit(":", 1)[1])) == -1
        assert 0 < r.ttl(old_item) <= v1.version_ttl_s
    finally:
        live.stop()


def test_a_replaying_worker_writes_user_lists_only_when_a_refresh_asks(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    s = make_settings(topic_prefix=f"{namespace}.", settle_s=1.0, session_timeout_s=6.0)
    s = dataclasses.replace(s, lists_on_refresh=True)
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    events = rees46_head(800)
    assert produce(s, events, progress=False).ok
    r = redis.Redis.from_url(s.redis_url)
    keys = Keys(s.namespace, s.version)
    worker = WorkerProcess(s, tmp_path / "replay.log", worker_id="replay")
    try:
        wait_caught_up(s, 180)
        drained = _lists(r, keys)
        assert any(k.startswith("bought:") or k.startswith("viewed:") for k in drained)
        assert not any(k.startswith("user:") for k in drained)
        request_refresh(s)
        wait_caught_up(s, 180)
        ref = LocalPipeline(s)
        ref.apply_all(events)
        assert_lists_match(s, ref)  # each list built once, at the end, as a live worker's

        # The log goes on after the refresh (a replay runs beside the live version):
        # from then on the worker publishes lists as a live one does.
        known = next(e for e in events if isinstance(e, Interaction))
        more = [
            Interaction("after-1", "view", known.user_id, known.item_id, known.ts + 1),
            Interaction("after-2", "purchase", "newcomer", known.item_id, known.ts + 2),
        ]
        assert produce(s, more, progress=False).ok
        wait_caught_up(s, 180)
        time.sleep(s.settle_s + 1.5)  # the re-check, once the item side has them too
        assert r.exists(keys.user("newcomer"))
    finally:
        worker.stop()
    ref.apply_all(more)
    # Their lists; the others reflect the item side of their own last events, as live.
    assert_lists_match(s, ref, [known.user_id, "newcomer"])


def test_replay_from_a_time_reads_interactions_from_there_and_the_whole_catalogue(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    s = make_settings(topic_prefix=f"{namespace}.", settle_s=1.0, session_timeout_s=6.0)
    # Gauges live 10 flush intervals after a worker's last flush: 30 s, ample for a stop.
    s = dataclasses.replace(s, version=3, state_dir=tmp_path, metrics_flush_s=3.0)
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    records = rees46_head(1200)
    assert produce(s, records, progress=False).ok
    times = sorted(r.ts for r in records if isinstance(r, Interaction))
    start = times[len(times) // 2]
    later = [r for r in records if isinstance(r, CatalogItem) or r.ts >= start]

    before = sum(1 for t in times if t < start)
    assert start_at(s, start)[build_topics(s).interactions.name] == before
    replay(s, timeout=180, workers=2)  # two workers share the partitions
    # Both worked: each held users.
    held = table_keys(s, (f"replay{s.version}-1", f"replay{s.version}-2"), TABLE_USERS)
    assert all(n > 0 for n in held.values()), held

    ref = LocalPipeline(s)
    ref.apply_all(later)
    assert len(ref.users) < len({r.user_id for r in records if isinstance(r, Interaction)})
    assert_lists_match(s, ref)
    with pytest.raises(VersionError, match="has run before"):
        start_at(s, start)


def _committed(s: Settings) -> list[int]:
    """Offsets the version's consumer group committed on its interactions topic."""
    topic = build_topics(s).interactions
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": s.app_id})
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        return [tp.offset for tp in consumer.committed(tps, timeout=10)]
    finally:
        consumer.close()


def _commit(s: Settings, offset: int) -> None:
    topic = build_topics(s).interactions
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": s.app_id})
    try:
        consumer.commit(offsets=[TopicPartition(topic.name, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_retire_lets_a_version_that_is_not_live_go(
    make_settings: Callable[..., Settings], namespace: str
) -> None:
    v1 = make_settings(topic_prefix=f"{namespace}.", session_timeout_s=6.0)
    v2, v3 = dataclasses.replace(v1, version=2), dataclasses.replace(v1, version=3)
    for s in (v1, v2, v3):
        ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    assert produce(v1, [Interaction("e1", "view", "u1", "i1", 1_000)], progress=False).ok
    for s in (v1, v2):
        _commit(s, 1)  # both versions read the log
    r = redis.Redis.from_url(v1.redis_url)
    try:
        k1, k2 = Keys(v1.namespace, 1), Keys(v1.namespace, 2)
        r.set(k1.active, b"1")
        for keys in (k1, k2):  # as a worker leaves them: some with a TTL, some without
            r.set(keys.item_meta("42"), b'{"category":"shoes"}')
            r.set(keys.user("7"), b"{}", ex=v1.user_ttl_s)
            r.set(keys.meta(), b"{}", ex=v1.version_ttl_s)
        r.set(k2.user("8"), b"{}", ex=60)  # due sooner than the version TTL

        with pytest.raises(VersionError, match="live one"):
            retire(v1, 1, topics=True)
        assert r.ttl(k1.item_meta("42")) == -1  # the live version is untouched

        expired, deleted, group = retire(v1, 2, topics=True)
        assert expired == 4
        for key in (k2.item_meta("42"), k2.user("7")):
            assert 0 < r.ttl(key) <= v1.version_ttl_s
        assert 0 < r.ttl(k2.user("8")) <= 60  # a TTL is shortened, never lengthened
        assert r.ttl(k1.item_meta("42")) == -1
        assert r.get(k1.active) == b"1"

        # promoted after all: its catalogue records are kept again, and its lists get
        # their own TTL back (lengthened only)
        r.set(k2.bought("42"), b"{}", ex=v1.version_ttl_s)
        r.set(k2.trending(), b"{}", ex=v1.version_ttl_s)
        r.set(k2.item_meta("7"), b"{}", ex=v1.version_ttl_s)
        r.set(f"{k2.prefix}metrics:worker", b"{}", ex=30)  # a gauge keeps its short TTL
        assert promote(v1, 2, force=True) == 1
        assert r.ttl(k2.item_meta("42")) == -1
        assert r.ttl(k2.item_meta("7")) == -1
        assert v1.version_ttl_s < r.ttl(k2.user("7")) <= v1.user_ttl_s
        assert v1.version_ttl_s < r.ttl(k2.bought("42")) <= v1.item_ttl_s
        assert v1.version_ttl_s < r.ttl(k2.trending()) <= v1.item_ttl_s
        assert r.ttl(f"{k2.prefix}metrics:worker") <= 30
        assert 0 < r.ttl(k2.meta()) <= v1.version_ttl_s
        assert 0 < r.ttl(k1.item_meta("42")) <= v1.version_ttl_s
    finally:
        r.close()
    # v2's own topics and its group are gone, so a replay as v2 would start from the
    # beginning of the log; the log, v1's topics and v1's offsets stay
    own = {t.name for t in build_topics(v2).all() if t.internal}
    assert set(deleted) == own
    assert group == v2.app_id
    listed = set(
        AdminClient({"bootstrap.servers": v1.kafka_bootstrap}).list_topics(timeout=5).topics
    )
    assert not own & listed
    assert {t.name for t in build_topics(v1).all()} <= listed
    assert max(_committed(v2)) < 0
    assert max(_committed(v1)) == 1


def test_a_running_version_keeps_its_meta_record_past_the_version_ttl(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    """`promote` takes the meta record as proof that a version runs: a worker renews it,
    so a version that runs for longer than its TTL can still be promoted (a rollback)."""
    s = make_settings(topic_prefix=f"{namespace}.", version_ttl_s=3)
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    r = redis.Redis.from_url(s.redis_url)
    keys = Keys(s.namespace, s.version)
    worker = WorkerProcess(s, tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 120
        while not r.exists(keys.meta()):
            assert worker.alive and time.monotonic() < deadline, worker.tail()
            time.sleep(0.2)
        time.sleep(2 * s.version_ttl_s)
        assert 0 < r.ttl(keys.meta()) <= s.version_ttl_s, worker.tail()
        assert promote(s, s.version, force=True) in (None, s.version)
    finally:
        worker.stop()


def test_a_replay_and_a_promotion_end_while_live_traffic_flows(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    """Beside a live version the log keeps growing, so the new version's lag is never
    zero; replay and promote wait until it has got through the log as it was."""
    v1 = make_settings(topic_prefix=f"{namespace}.", settle_s=1.0, session_timeout_s=6.0)
    ensure_topics(v1.kafka_bootstrap, build_topics(v1).all())
    events = rees46_head(400)
    assert produce(v1, events, progress=False).ok
    known = [e for e in events if isinstance(e, Interaction)][:50]
    stop = threading.Event()

    def traffic() -> None:  # about 100 events/s until stopped
        producer = Producer(producer_config(v1))
        n = 0
        while not stop.is_set():
            e = known[n % len(known)]
            ev = Interaction(f"live-{n}", "view", e.user_id, e.item_id, e.ts + n)
            producer.produce(build_topics(v1).interactions.name, encode(ev), e.user_id.encode())
            producer.poll(0)
            n += 1
            time.sleep(0.01)
        producer.flush(10)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    v2 = dataclasses.replace(v1, version=2)
    worker = None
    try:
        replay(v2, timeout=150)
        r = redis.Redis.from_url(v2.redis_url)
        assert r.exists(Keys(v2.namespace, 2).user(known[0].user_id))
        worker = WorkerProcess(v2, tmp_path / "v2.log", worker_id="v2-live")
        # Its lag is above zero all along; it was made active already, as the first
        # version to run on this namespace.
        assert promote(v2, 2) == 2
    finally:
        stop.set()
        thread.join(15)
        if worker is not None:
            worker.stop()
