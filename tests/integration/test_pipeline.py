"""Produce -> worker -> Redis, against the real broker and Redis.

The reference for every published list is :class:`streams.pipeline.LocalPipeline`, the
same transitions run in-process; the first test also pins a hand-computed example.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from agents.control import refresh_when_drained
from agents.producer import produce, produce_raw
from agents.publisher import connect
from agents.reader import Reader
from infra.workers import WorkerProcess
from schemas.dead_letter import DeadLetter
from schemas.events import CatalogItem, Interaction
from streams.pipeline import LocalPipeline
from streams.serving import Keys, decode_user
from streams.settings import Settings
from streams.sources import synthetic
from streams.topics import build_topics
from streams.user_state import BOUGHT, VIEWED

T0 = 1_570_000_000_000


@pytest.fixture
def settings(fast_settings: Callable[..., Settings]) -> Settings:
    """Fast-settling settings with topics of their own."""
    return fast_settings()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    """Factory of worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(name: str = "w1") -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"{name}.log", worker_id=name)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop(grace_s=10.0)


def drain(settings: Settings, worker: WorkerProcess, timeout: float = 120.0) -> None:
    """Wait until the workers processed everything, then have every list recomputed."""

    def alive(_: Any) -> None:
        assert worker.alive, f"worker died:\n{worker.tail()}"

    refresh_when_drained(settings, timeout, on_poll=alive)


@contextlib.contextmanager
def drained_worker(settings: Settings, events: list[Any], tmp_path: Path) -> Iterator[None]:
    """``events`` produced and drained by one worker, which is stopped at the end."""
    assert produce(settings, events, progress=False).ok
    worker = WorkerProcess(settings, tmp_path / "w1.log")
    try:
        drain(settings, worker)
        yield
    finally:
        worker.stop(grace_s=10.0)


def published(settings: Settings, key: str) -> list[list[Any]] | None:
    r = redis.Redis.from_url(settings.redis_url)
    try:
        raw = r.get(key)
    finally:
        r.close()
    return None if raw is None else orjson.loads(raw)["items"]


def assert_lists_match(
    settings: Settings, ref: LocalPipeline, users: Iterable[str] | None = None
) -> None:
    """Every user list in Redis (or those of ``users``) equals the reference: order,
    reasons, scores within 1e-3."""
    keys = Keys(settings.namespace, settings.version)
    assert ref.users, "reference saw no users"
    for uid in ref.users if users is None else users:
        want = [r.to_list() for r in ref.recommend(uid)]
        got = published(settings, keys.user(uid))
        assert got is not None, f"no list published for user {uid}"
        assert [g[0] for g in got] == [w[0] for w in want], f"user {uid}"
        assert [g[2] for g in got] == [w[2] for w in want], f"user {uid} reasons"
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-3)


def test_hand_computed_example(settings: Settings, workers: Callable[..., WorkerProcess]) -> None:
    """Six events, lists worked out by hand (see the comments)."""
    catalog = [
        CatalogItem("A", T0, category="shoes", brand="acme"),
        CatalogItem("D", T0, category="shoes", in_stock=False),
    ]
    steps = [
        ("u1", "A", "view"),
        ("u1", "B", "view"),
        ("u1", "B", "purchase"),
        ("u2", "A", "view"),
        ("u2", "C", "view"),
        ("u3", "A", "view"),
        ("u3", "D", "view"),
    ]
    events = [
        Interaction(f"e{i}", t, u, item, T0 + i * 1000) for i, (u, item, t) in enumerate(steps)
    ]
    summary = produce(settings, [*catalog, *events], progress=False)
    assert summary.ok
    w = workers()
    drain(settings, w)
    keys = Keys(settings.namespace, settings.version)
    # u1 bought B after viewing A: A's also-bought = B, weight 1.0 (purchase) * 0.5 (view anchor)
    assert published(settings, keys.bought("A")) == [["B", pytest.approx(0.5, abs=1e-3)]]
    # A was co-visited with B by u1 (view-view 0.5 * 0.5, then purchase-view 1.0 * 0.5) and
    # with C by u2 (0.25); D (co-viewed by u3) is out of stock and left out
    assert published(settings, keys.viewed("A")) == [
        ["B", pytest.approx(0.75, abs=1e-3)],
        ["C", pytest.approx(0.25, abs=1e-3)],
    ]
    # u3 viewed A then D: anchors D (weight 1) and A (0.8). B gets 0.8 * 0.1 * 1.0 (A's
    # bought list) + 0.8 * 0.6 * 1.0 from A's viewed list, the stronger vote; C gets
    # 0.8 * 0.6 * 0.25/0.75: B first, then C
    user3 = published(settings, keys.user("u3"))
    assert user3 is not None
    assert [row[0] for row in user3][:2] == ["B", "C"]
    assert user3[0][2] == "v:A"
    # D is out of stock: never recommended, even though u3 co-viewed it with A
    assert all(row[0] != "D" for row in user3)
    assert "D" not in [i for i, _ in published(settings, keys.viewed("A")) or []]
    # trending: B (1 view + purchase 5 = 6), A (3 views), C (1), D (1)
    trending = published(settings, keys.trending())
    assert trending is not None and [i for i, _ in trending][:2] == ["B", "A"]
    ref = LocalPipeline(settings)
    ref.apply_all([*catalog, *events])
    assert_lists_match(settings, ref)


POISON = {
    "not_json": b"{this is not json",
    "missing_field": orjson.dumps({"event_id": "p2", "type": "view", "user_id": "u1", "ts": T0}),
    "wrong_type": orjson.dumps(
        {"event_id": "p3", "type": "view", "user_id": "u1", "item_id": "A", "ts": "yesterday"}
    ),
    "oversized": orjson.dumps(
        {
            "event_id": "p4",
            "type": "view",
            "user_id": "u1",
            "item_id": "A",
            "ts": T0,
            "context": {"pad": "x" * 20_000},
        }
    ),
    "unknown_type": orjson.dumps(
        {"event_id": "p5", "type": "teleport", "user_id": "u1", "item_id": "A", "ts": T0}
    ),
}


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "t-read",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg)
        return out
    finally:
        consumer.close()


def test_poison_messages_reach_dead_letter(
    settings: Settings, workers: Callable[..., WorkerProcess]
) -> None:
    """Each kind of bad record lands in the dead-letter topic; the next good one still counts."""
    topic = build_topics(settings).interactions
    for n, payload in enumerate(POISON.values()):
        produce_raw(settings, topic.name, b"u1", payload)
        good = Interaction(f"g{n}", "view", "u1", f"item{n}", T0 + n)
        produce(settings, [good], progress=False)
    w = workers()
    drain(settings, w)
    letters = [
        DeadLetter.from_bytes(m.value())
        for m in read_topic(settings, topic.dead_letter or "", len(POISON))
    ]
    assert sorted(d.reason for d in letters) == sorted(POISON)
    for d in letters:
        assert d.original == POISON[d.reason], d.reason
        assert d.source_topic == topic.name and d.source_offset >= 0
        assert d.error
    keys = Keys(settings.namespace, settings.version)
    record = redis.Redis.from_url(settings.redis_url).get(keys.user("u1"))
    assert record is not None
    assert orjson.loads(record)["recent"] == [f"item{n}" for n in reversed(range(len(POISON)))]


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_restart_mid_stream_gives_clean_run_lists(
    settings: Settings,
    workers: Callable[..., WorkerProcess],
    stop: str,
) -> None:
    """A worker stopped (or killed) mid-stream and restarted publishes a clean run's lists."""
    events = list(synthetic(n_users=150, n_items=80, n_events=6000, seed=7))
    half = len(events) // 2
    assert produce(settings, events[:half], progress=False).ok
    first = workers("w1")
    deadline = time.monotonic() + 90
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    while not r.keys(keys.prefix + "user:*"):  # processing has started
        assert first.alive and time.monotonic() < deadline, first.tail()
        time.sleep(0.1)
    assert produce(settings, events[half:], progress=False).ok
    code = first.stop(grace_s=10.0) if stop == "sigterm" else first.kill()
    assert code is not None
    second = workers("w2")
    drain(settings, second, timeout=180)
    ref = LocalPipeline(settings)
    ref.apply_all(events)
    assert_lists_match(settings, ref)


def test_capped_neighbour_lists_match_the_reference(
    fast_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Items far past the neighbour cap: the worker, whose item side meets the four user
    partitions' deltas interleaved as its batches happen, publishes the lists the
    reference builds in event order, every item list and every user list."""
    s = fast_settings(neighbours_kept=16)
    kept = s.neighbours_per_partition
    assert kept == 4
    events = list(synthetic(n_users=150, n_items=80, n_events=4000, seed=5))
    ref = LocalPipeline(s)
    ref.apply_all(events)
    full = [
        lst
        for state in ref.items.values()
        for lists in state.neighbours.values()
        if len(lists) > 1  # pairs from more than one user partition
        for lst in lists.values()
        if len(lst) == kept
    ]
    assert len(full) > 100, "the cap must be reached, by items fed from several partitions"
    with drained_worker(s, events, tmp_path):
        keys = Keys(s.namespace, s.version)
        for item in ref.items:
            for relation, key in ((BOUGHT, keys.bought(item)), (VIEWED, keys.viewed(item))):
                want = ref.item_list(relation, item)
                assert (published(s, key) or []) == want, (relation, item)
        assert_lists_match(s, ref)


def test_reader_fallback_chain(settings: Settings, workers: Callable[..., WorkerProcess]) -> None:
    """Unknown user -> trending; a known anonymous session's items -> their lists."""
    steps = [("u1", "A", "view"), ("u1", "B", "purchase"), ("u2", "A", "view")]
    events = [Interaction(f"e{i}", t, u, item, T0 + i) for i, (u, item, t) in enumerate(steps)]
    assert produce(settings, events, progress=False).ok
    drain(settings, workers())

    async def read() -> tuple[Any, Any]:
        client = connect(settings.redis_url, retries=1)
        reader = Reader(client, settings.namespace, version=settings.version)
        try:
            return (
                await reader.recommendations("nobody", k=3),
                await reader.recommendations("nobody", k=3, recent=["A"]),
            )
        finally:
            await client.aclose()

    cold, session = asyncio.run(read())
    assert cold.sources == ["trending"] and cold.items[0][0] == "B"
    assert session.sources[0] == "recent" and session.items[0][:1] == ["B"]
    assert session.items[0][2] == "b:A"


def test_business_rules_and_category_cap_in_the_worker(
    fast_settings: Callable[..., Settings],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """The worker applies KAPPAREC_RULES and KAPPAREC_CATEGORY_CAP as the reference does."""
    s = fast_settings(rules="brand=brand3*0;category=electronics*3", category_cap=2)
    events = list(synthetic(n_users=60, n_items=40, n_events=1500, seed=11))
    brands = {e.item_id: e.brand for e in events if isinstance(e, CatalogItem)}
    with drained_worker(s, events, tmp_path):
        ref = LocalPipeline(s)
        ref.apply_all(events)
        assert_lists_match(s, ref)
        unruled = LocalPipeline(make_settings(partitions=s.partitions))
        unruled.apply_all(events)
        assert any(
            brands.get(r.item_id) == "brand3" for u in unruled.users for r in unruled.recommend(u)
        ), "the rule must have something to hide"
        keys = Keys(s.namespace, s.version)
        for uid in ref.users:
            got = published(s, keys.user(uid)) or []
            assert all(brands.get(row[0]) != "brand3" for row in got), uid


def test_packed_user_records_in_the_worker(
    fast_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """KAPPAREC_USER_LIST_ENCODING=packed: every list is packed and reads as the reference."""
    s = fast_settings(user_list_encoding="packed")
    events = [
        dataclasses.replace(e, item_id=e.item_id.removeprefix("i"))  # numeric ids pack
        for e in synthetic(n_users=60, n_items=40, n_events=1500, seed=11)
    ]
    category = {e.item_id: e.category for e in events if isinstance(e, CatalogItem)}
    with drained_worker(s, events, tmp_path):
        ref = LocalPipeline(s)
        ref.apply_all(events)
        keys = Keys(s.namespace, s.version)
        reasons = set()
        with redis.Redis.from_url(s.redis_url) as r:
            for uid in ref.users:
                raw = r.get(keys.user(uid))
                assert raw is not None and raw[:1] == b"\x02", uid
                got = decode_user(raw)["items"]
                want = [rec.to_list() for rec in ref.recommend(uid)]
                assert [g[0] for g in got] == [w[0] for w in want], uid
                # a category reason is the item's own category, left for the reader to name
                named = [f"c:{category[g[0]]}" if g[2] == "c" else g[2] for g in got]
                assert named == [w[2] for w in want], uid
                for g, rec in zip(got, ref.recommend(uid), strict=True):
                    # half a score step (2 ** (1/32) - 1) plus the 4-decimal rounding
                    assert abs(g[1] - rec.score) <= 0.022 * rec.score + 5.1e-5, (uid, g)
                reasons.update(g[2][:1] for g in got)
        assert {"c", "v", "t"} <= reasons, "every kind of reason must have been packed"
