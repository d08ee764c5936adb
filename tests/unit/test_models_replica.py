"""The item-vector replica: record encoding, content records, stale lists, replay."""

from __future__ import annotations

import numpy as np
import pytest

from streams.models.index import IndexParams
from streams.models.replica import (
    ReplicaParams,
    StaleLists,
    VectorReplica,
    content_encoder,
    content_record,
    decode_value,
    encode_value,
)
from streams.models.vectors import VectorRecord

ENC = content_encoder()
SHOES = [
    {"category": "apparel.shoes.running", "brand": "acme", "price": 80.0, "title": f"Runner {i}"}
    for i in range(4)
]
PHONES = [
    {"category": "electronics.smartphone", "brand": "zphone", "price": 600.0, "title": f"Z {i}"}
    for i in range(4)
]


def catalogue() -> list[tuple[str, dict[str, object]]]:
    return [(f"s{i}", m) for i, m in enumerate(SHOES)] + [
        (f"p{i}", m) for i, m in enumerate(PHONES)
    ]


def records(items: list[tuple[str, dict[str, object]]]) -> list[tuple[VectorRecord, int]]:
    return [(content_record(ENC, i, m), n) for n, (i, m) in enumerate(items)]


def test_value_round_trips_and_tombstone_is_null() -> None:
    rec = content_record(ENC, "s0", SHOES[0])
    assert rec.vector is not None
    raw = encode_value(rec.vector)
    assert raw is not None and len(raw) == 32 * 4
    back = decode_value("s0", raw, 32)
    assert back.item_id == "s0"
    assert back.vector == pytest.approx(rec.vector)
    assert encode_value(None) is None
    assert decode_value("s0", None, 32) == VectorRecord("s0", None)
    assert decode_value("s0", b"", 32) == VectorRecord("s0", None)


@pytest.mark.parametrize(
    "raw", [b"\x00" * 7, b"\x00" * 64, np.full(32, np.nan, dtype="<f4").tobytes()]
)
def test_bad_value_is_our_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="s0"):
        decode_value("s0", raw, 32)


def test_deleted_or_empty_record_is_a_tombstone() -> None:
    assert content_record(ENC, "x", {**SHOES[0], "deleted": True}).vector is None
    assert content_record(ENC, "x", {"item_id": "x", "ts": 1}).vector is None
    assert content_record(ENC, "x", {**SHOES[0], "in_stock": False}).vector is not None


def test_neighbours_share_category_and_brand() -> None:
    replica = VectorReplica(ReplicaParams(list_size=3))
    replica.step(records(catalogue()), now_ms=0, track=False)
    replica.flush(0)
    assert len(replica) == 8
    assert {i for i, _ in replica.neighbours("s0")} == {"s1", "s2", "s3"}
    assert {i for i, _ in replica.neighbours("p2")} == {"p0", "p1", "p3"}
    assert all(i != "s0" for i, _ in replica.neighbours("s0", k=7))
    assert replica.neighbours("unknown") == []


def test_new_item_makes_the_lists_it_enters_stale() -> None:
    replica = VectorReplica(ReplicaParams(list_size=4))
    replica.step(records(catalogue()), now_ms=0, track=False)
    replica.flush(0)
    published = replica.lists(replica.items())
    new = {**SHOES[0], "title": "Runner 9"}
    stale = replica.step([(content_record(ENC, "s9", new), 10)], now_ms=10_000)
    assert "s9" in stale
    entered = {i for i in published if "s9" in dict(replica.neighbours(i))}
    assert {"s0", "s1", "s2", "s3"} <= entered <= stale  # each shoe listed a phone last
    assert replica.newest_ts == 10


def test_deleted_item_leaves_and_its_former_neighbours_go_stale() -> None:
    replica = VectorReplica(ReplicaParams(list_size=3))
    replica.step(records(catalogue()), now_ms=0, track=False)
    replica.flush(0)
    replica.lists(replica.items())
    stale = replica.step([(VectorRecord("s1", None), 5)], now_ms=10_000)
    assert {"s0", "s1", "s2", "s3"} <= stale
    lists = replica.lists(["s0", "s1"])
    assert lists["s1"] is None
    assert "s1" not in {i for i, _ in lists["s0"] or []}


def test_changes_wait_for_the_flush_timer_or_size() -> None:
    params = ReplicaParams(index=IndexParams(flush_every_ms=1_000, flush_size=256), list_size=3)
    replica = VectorReplica(params)
    replica.step(records(catalogue()[:2]), now_ms=0)  # first call flushes at once
    assert len(replica) == 2
    assert replica.step(records(catalogue()[2:3]), now_ms=500) == set()  # coalesced
    assert len(replica) == 2
    assert "s2" in replica.step([], now_ms=1_000)
    assert len(replica) == 3


def test_a_replay_rebuilds_the_same_answers() -> None:
    """Two replicas fed the same log in different chunkings answer alike (small catalogue:
    HNSW at ef 64 is exact here)."""
    log = records(catalogue())
    log += [(VectorRecord("p3", None), 20), (content_record(ENC, "s5", SHOES[1]), 21)]
    live = VectorReplica(ReplicaParams(list_size=5))
    for n, rec in enumerate(log):  # one record at a time, flushed on the timer
        live.step([rec], now_ms=n * 1_000)
    live.flush(10**6)
    rebuilt = VectorReplica(ReplicaParams(list_size=5))
    rebuilt.step(log, now_ms=0, track=False)
    rebuilt.flush(0)
    assert sorted(live.items()) == sorted(rebuilt.items())
    assert "p3" not in rebuilt.items()
    for item in rebuilt.items():
        assert [i for i, _ in live.neighbours(item)] == [i for i, _ in rebuilt.neighbours(item)]


def tied_log(order_seed: int) -> list[tuple[VectorRecord, int]]:
    """60 items with only three distinct vectors, in a shuffled arrival order."""
    rng = np.random.default_rng(0)
    shapes = rng.normal(size=(3, 32)).astype(np.float32)
    shapes /= np.linalg.norm(shapes, axis=1, keepdims=True)
    items = [(f"i{n:02d}", tuple(shapes[n % 3].tolist())) for n in range(60)]
    np.random.default_rng(order_seed).shuffle(items)  # type: ignore[arg-type]
    return [(VectorRecord(i, v), n) for n, (i, v) in enumerate(items)]


@pytest.mark.parametrize("exact_up_to", [20_000, 0])
def test_equal_scores_are_ordered_by_item_id(exact_up_to: int) -> None:
    replica = VectorReplica(ReplicaParams(list_size=50, exact_up_to=exact_up_to))
    replica.step(tied_log(1), now_ms=0, track=False)
    replica.flush(0)
    for item in ["i00", "i01", "i31"]:
        found = replica.neighbours(item)
        assert found == sorted(found, key=lambda row: (-row[1], row[0]))
        assert item not in {i for i, _ in found}


def test_a_tie_group_cut_by_the_list_size_is_cut_the_same_whatever_the_arrival_order() -> None:
    """Replay determinism: 19 items tie with each item, lists hold 5; which 5 must not
    depend on the order the vectors arrived in (nor on the graph built from it)."""
    answers = []
    for seed in range(4):
        replica = VectorReplica(ReplicaParams(list_size=5))
        replica.step(tied_log(seed), now_ms=0, track=False)
        replica.flush(0)
        answers.append({item: replica.neighbours(item) for item in sorted(replica.items())})
    assert all(a == answers[0] for a in answers[1:])
    assert [i for i, _ in answers[0]["i00"]] == ["i03", "i06", "i09", "i12", "i15"]


def test_a_list_never_computed_here_is_not_reported() -> None:
    replica = VectorReplica(ReplicaParams(list_size=3))
    replica.step(records(catalogue()), now_ms=0, track=False)
    replica.flush(0)
    replica.lists(["s0"])
    stale = replica.step([(content_record(ENC, "s9", {**SHOES[0], "title": "R 9"}), 1)], 10_000)
    assert stale <= {"s0", "s9"}


def _changes(
    rng: np.random.Generator, centres: np.ndarray, step: int
) -> list[tuple[VectorRecord, int]]:
    changes = []
    for _ in range(int(rng.integers(1, 4))):
        item = f"i{int(rng.integers(40))}"
        if rng.random() < 0.15:
            changes.append((VectorRecord(item, None), step))
        else:
            v = centres[rng.integers(4)] + rng.normal(scale=0.6, size=32)
            v = np.round(v / np.linalg.norm(v), 2)  # rounding makes ties
            v = v / np.linalg.norm(v)
            changes.append((VectorRecord(item, tuple(v.tolist())), step))
    return changes


@pytest.mark.parametrize("seed", range(8))
def test_lists_kept_current_from_stale_sets_equal_fresh_ones(seed: int) -> None:
    """The live loop (apply, rewrite the stale lists) keeps every published list equal to
    a fresh computation, so a replay publishes what the live run left (exact scans)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    replica = VectorReplica(ReplicaParams(list_size=4))
    published: dict[str, list[tuple[str, float]] | None] = {}
    for step in range(60):
        stale = replica.step(_changes(rng, centres, step), now_ms=step * 2_000)
        published.update(replica.lists(sorted(stale)))
        current = {i: found for i, found in published.items() if found is not None}
        assert current == replica.lists(sorted(current)), f"step {step}"
        assert set(current) == set(replica.items())


@pytest.mark.parametrize("seed", range(8))
def test_stale_sets_gathered_over_flushes_still_give_fresh_lists(seed: int) -> None:
    """Lists recomputed only now and then, from the union of the stale sets since the
    last time (StaleLists), equal a fresh computation whenever they are recomputed."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    replica = VectorReplica(ReplicaParams(list_size=4))
    waiting = StaleLists(min_wait_s=3.0)
    published: dict[str, list[tuple[str, float]] | None] = {}
    recomputed = 0
    for step in range(80):
        stale = replica.step(_changes(rng, centres, step), now_ms=step * 2_000)
        waiting.add(stale, now=float(step))
        if waiting.due(float(step), idle=rng.random() < 0.2):
            recomputed += 1
            published.update(replica.lists(sorted(waiting.take())))
            current = {i: found for i, found in published.items() if found is not None}
            assert current == replica.lists(sorted(current)), f"step {step}"
            assert set(current) == set(replica.items())
    assert 10 < recomputed < 60  # the schedule did gather several flushes at a time


def test_stale_lists_wait_while_records_keep_coming() -> None:
    waiting = StaleLists(min_wait_s=1.0)
    assert not waiting.due(0.0, idle=True)  # nothing waits
    waiting.add([], now=0.0)
    assert not waiting.due(5.0, idle=True)  # nothing marked: the clock did not start
    waiting.add(["a"], now=10.0)
    waiting.add(["b"], now=10.6)  # the oldest one's time counts
    assert not waiting.due(10.9, idle=False)
    assert waiting.due(10.9, idle=True)  # the records paused
    assert waiting.due(11.0, idle=False)  # the oldest waited min_wait_s
    assert waiting.take() == {"a", "b"}
    assert not waiting.due(100.0, idle=True)
    assert waiting.items == set()


def test_a_slow_recompute_stretches_the_wait() -> None:
    waiting = StaleLists(min_wait_s=1.0)
    waiting.took(4.0)  # the last recompute took 4 s: wait as long before the next
    waiting.add(["a"], now=0.0)
    assert not waiting.due(3.9, idle=False)
    assert waiting.due(4.0, idle=False)
    assert waiting.due(0.1, idle=True)
