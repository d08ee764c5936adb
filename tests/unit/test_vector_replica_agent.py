"""The item-vector replica's loop (agents/vector_replica.py) on a log held in memory.

The consumer, the Faust app's assignment and Redis are replaced by small fakes; the
replica, its index and the publication logic are the worker's own. The integration test
of item vectors runs the same loop against the broker and Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

import agents.vector_replica as vr
from agents.vector_replica import CopyWait, Renewal
from streams.models.replica import content_encoder, content_record, encode_value
from streams.models.vectors import VectorRecord
from streams.partitioning import partition_for
from streams.serving import Keys
from streams.settings import Settings

PARTITIONS = 2
ENCODER = content_encoder()
KEYS = Keys("kapparec", 1)
Record = tuple[int, str, bytes | None, int]  # partition, item, value, timestamp (ms)


def meta(item: str, ts: int = 1, **fields: Any) -> dict[str, Any]:
    return {"item_id": item, "ts": ts, "category": "apparel.shoes", "brand": "acme",
            "price": 80.0, "title": f"Runner {item}", **fields}  # fmt: skip


def vector(item: str, ts: int = 1, **fields: Any) -> Record:
    value = encode_value(content_record(ENCODER, item, meta(item, ts, **fields)).vector)
    return (partition_for(item, PARTITIONS), item, value, ts)


class _Consumer:
    """The item-vectors topic: ``log`` from the start, then what ``feed`` gets."""

    def __init__(self, log: Iterable[Record]) -> None:
        self.logs: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
        for r in log:
            self.logs[r[0]].append(r)
        self.pos: dict[TopicPartition, int] = {}
        self.tps: list[TopicPartition] = []

    def feed(self, *records: Record) -> None:
        for r in records:
            self.logs[r[0]].append(r)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.tps = tps

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.pos.update(dict.fromkeys(tps, 0))

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp.partition]) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, Any]:
        await asyncio.sleep(0.01)
        out = {}
        for tp in self.tps:
            new = self.logs[tp.partition][self.pos[tp] :]
            if new:
                out[tp] = [
                    SimpleNamespace(topic="iv", partition=tp.partition, offset=self.pos[tp] + i,
                                    key=item.encode(), value=value, timestamp=ts)
                    for i, (_, item, value, ts) in enumerate(new)
                ]  # fmt: skip
                self.pos[tp] += len(new)
        return out


class _Publisher:
    keys = KEYS

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.writes: list[str] = []

    async def write(self, writes: list[tuple[str, bytes, int]]) -> None:
        for key, value, _ in writes:
            self.kv[key] = value
            self.writes.append(key)

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.kv.pop(key, None)


async def _ends(factory: Any, ends: Any, timeout_s: float = 10.0) -> Any:
    return dict(ends)


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vr, "fetched_ends", _ends)


def replica(
    catalog: dict[str, Any], publisher: _Publisher, ready: asyncio.Event | None = None
) -> vr.ItemVectorReplica:
    settings = Settings(partitions=PARTITIONS, similar_list_size=3)
    topics = SimpleNamespace(
        item_vectors=SimpleNamespace(name="iv", partitions=PARTITIONS),
        catalog=SimpleNamespace(name="catalog"),
    )
    owned = {TopicPartition("catalog", p) for p in range(PARTITIONS)}
    app = SimpleNamespace(assignor=SimpleNamespace(assigned_actives=lambda: owned))
    return vr.ItemVectorReplica(
        app,  # type: ignore[arg-type]
        settings,
        topics,  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        SimpleNamespace(data=catalog),
        catalog_ready=ready,
    )


async def follow(
    rep: vr.ItemVectorReplica, consumer: _Consumer, until: Any, limit_s: float = 10
) -> None:
    """Run the loop until ``until()`` holds (or fail after ``limit_s``)."""
    task = asyncio.create_task(rep._follow(consumer))  # type: ignore[arg-type]
    try:
        for _ in range(int(limit_s / 0.02)):
            if until():
                return
            assert not task.done(), task
            await asyncio.sleep(0.02)
        raise AssertionError("the condition never held")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


ITEMS = [f"s{i}" for i in range(8)]


@pytest.mark.parametrize("tombstone_kept", [True, False], ids=["tombstone", "compacted"])
async def test_a_restarted_worker_removes_the_list_of_an_item_deleted_meanwhile(
    tombstone_kept: bool,
) -> None:
    """The worker died after the deletion and before removing the list; the tombstone is
    read while catching up, or was compacted away and only the catalogue tells."""
    publisher, catalog = _Publisher(), {i: meta(i) for i in ITEMS}
    log = [vector(i) for i in ITEMS]
    await follow(replica(catalog, publisher), _Consumer(log), lambda: len(publisher.kv) == 8)
    catalog["s0"] = meta("s0", ts=2, deleted=True)
    log = [r for r in log if r[1] != "s0"]
    if tombstone_kept:
        log.insert(0, (partition_for("s0", PARTITIONS), "s0", None, 2))
    restarted = replica(catalog, publisher)
    await follow(restarted, _Consumer(log), lambda: KEYS.similar("s0") not in publisher.kv)
    assert set(publisher.kv) == {KEYS.similar(i) for i in ITEMS[1:]}


async def test_lists_wait_for_the_catalogue_copy_to_catch_up() -> None:
    publisher, catalog = _Publisher(), {}
    ready = asyncio.Event()
    rep = replica(catalog, publisher, ready)
    consumer = _Consumer([vector(i) for i in ITEMS])
    task = asyncio.create_task(rep._follow(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    assert publisher.kv == {}  # the copy could not tell which neighbours are in stock
    catalog.update({i: meta(i, in_stock=i != "s1") for i in ITEMS})
    ready.set()
    for _ in range(200):
        if len(publisher.kv) == 8:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(publisher.kv) == 8
    assert all(b'"s1"' not in v for v in publisher.kv.values())  # out of stock: left out


async def test_a_list_waits_for_the_catalogue_record_its_vector_came_from() -> None:
    """s1 goes out of stock: its vector record (same vector) reaches the replica before
    its catalogue record reaches the copy. The lists it is in are written once the copy
    has the record, without s1."""
    publisher, catalog = _Publisher(), {i: meta(i) for i in ITEMS}
    consumer = _Consumer([vector(i) for i in ITEMS])
    rep = replica(catalog, publisher)
    task = asyncio.create_task(rep._follow(consumer))  # type: ignore[arg-type]
    for _ in range(200):
        if len(publisher.kv) == 8:
            break
        await asyncio.sleep(0.02)
    assert any(b'"s1"' in v for v in publisher.kv.values())
    consumer.feed(vector("s1", ts=5, in_stock=False))
    await asyncio.sleep(1.5)  # the replica has the vector; the copy not yet the record
    catalog["s1"] = meta("s1", ts=5, in_stock=False)
    for _ in range(200):
        if not any(b'"s1"' in v for k, v in publisher.kv.items() if k != KEYS.similar("s1")):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not any(b'"s1"' in v for k, v in publisher.kv.items() if k != KEYS.similar("s1"))


async def test_lists_written_after_the_wait_gave_up_are_written_again_once_the_record_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, but the copy gets s1's record only after the wait gave up (0.3 s here):
    the lists written meanwhile still list s1, and are written again without it once the
    copy holds the record."""
    monkeypatch.setattr(vr, "CopyWait", lambda: CopyWait(max_s=0.3))
    publisher, catalog = _Publisher(), {i: meta(i) for i in ITEMS}
    consumer = _Consumer([vector(i) for i in ITEMS])
    rep = replica(catalog, publisher)
    others = lambda: {k: v for k, v in publisher.kv.items() if k != KEYS.similar("s1")}  # noqa: E731
    task = asyncio.create_task(rep._follow(consumer))  # type: ignore[arg-type]
    try:
        for _ in range(200):
            if len(publisher.kv) == 8:
                break
            await asyncio.sleep(0.02)
        consumer.feed(vector("s1", ts=5, in_stock=False))
        publisher.writes.clear()
        for _ in range(200):  # given up on the copy: written with what it holds
            if len(publisher.writes) >= 2:
                break
            await asyncio.sleep(0.02)
        assert any(b'"s1"' in v for v in others().values())
        catalog["s1"] = meta("s1", ts=5, in_stock=False)
        for _ in range(200):
            if not any(b'"s1"' in v for v in others().values()):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not any(b'"s1"' in v for v in others().values())


async def test_every_list_is_rewritten_within_its_ttl_though_nothing_changed() -> None:
    publisher, catalog = _Publisher(), {i: meta(i) for i in ITEMS}
    rep = replica(catalog, publisher)
    rep.renewal.period_s = 0.6
    await follow(rep, _Consumer([vector(i) for i in ITEMS]), lambda: len(publisher.kv) == 8)
    publisher.kv.clear()  # expired, or Redis emptied
    publisher.writes.clear()
    await follow(rep, _Consumer([]), lambda: len(publisher.kv) == 8, limit_s=5)
    assert sorted(publisher.writes) == sorted(KEYS.similar(i) for i in ITEMS)


def test_a_renewal_round_hands_out_every_list_once_over_half_a_period() -> None:
    r = Renewal(period_s=100.0)
    r.restart(0.0)
    assert not r.round_due(99.0) and r.round_due(100.0)
    items = [f"i{n}" for n in range(10)]
    r.begin(100.0, items)
    taken = r.take(100.0) + r.take(120.0)
    assert len(taken) == 4  # 40 % of the way through the first half-period
    taken += r.take(150.0) + r.take(151.0)
    assert sorted(taken) == sorted(items) and not r.round_due(151.0)
    assert r.round_due(200.0)


def test_copy_wait_gives_up_after_its_limit() -> None:
    wait = CopyWait(max_s=5.0)
    wait.expect([(VectorRecord("x", None), 100)])
    assert not wait.ready(lambda item: {"ts": 50}, now=0.0)
    assert not wait.ready(lambda item: {"ts": 50}, now=4.0)
    assert wait.ready(lambda item: {"ts": 50}, now=5.0)
    wait.expect([(VectorRecord("x", None), 100)])
    assert wait.ready(lambda item: {"ts": 99}, now=6.0)  # within a millisecond


def test_copy_wait_owes_the_lists_written_after_it_gave_up() -> None:
    copy: dict[str, Any] = {"x": {"ts": 50}}
    wait = CopyWait(max_s=5.0)
    wait.expect([(VectorRecord("x", None), 100)])
    assert not wait.ready(copy.get, now=0.0)
    assert wait.ready(copy.get, now=5.0)  # gave up on x's record
    wait.written(["a", "b"])
    assert wait.settled(copy.get) == []  # x's record still missing
    wait.written(["c"])
    copy["x"] = {"ts": 100}
    assert wait.settled(copy.get) == ["a", "b", "c"]
    assert wait.settled(copy.get) == []  # handed back once
    wait.written(["d"])  # nothing late: nothing owed
    assert wait.settled(copy.get) == [] and not wait.owed
