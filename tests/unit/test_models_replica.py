"""The item-vector replica: record encoding, content records, stale lists, replay."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from streams.models import replica as replica_module
from streams.models.index import IndexParams
from streams.models.replica import (
    Neighbours,
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


def _random_changes(
    rng: np.random.Generator,
    step: int,
    count: tuple[int, int],
    items: int,
    deleted: float,
    vector: Callable[[np.random.Generator], np.ndarray],
) -> list[tuple[VectorRecord, int]]:
    """``count`` (a range) changes among ``items`` items, a share ``deleted`` of them
    tombstones, the others ``vector(rng)``."""
    changes = []
    for _ in range(int(rng.integers(*count))):
        item = f"i{int(rng.integers(items))}"
        if rng.random() < deleted:
            changes.append((VectorRecord(item, None), step))
        else:
            changes.append((VectorRecord(item, tuple(vector(rng).tolist())), step))
    return changes


def _changes(
    rng: np.random.Generator, centres: np.ndarray, step: int
) -> list[tuple[VectorRecord, int]]:
    def clustered(rng: np.random.Generator) -> np.ndarray:
        v = centres[rng.integers(4)] + rng.normal(scale=0.6, size=32)
        v = np.round(v / np.linalg.norm(v), 2)  # rounding makes ties
        return v / np.linalg.norm(v)

    return _random_changes(rng, step, (1, 4), 40, 0.15, clustered)


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


HEADPHONES = {
    "category": "electronics.audio.headphones",
    "brand": "sonic",
    "price": 199.0,
    "title": "Sonic WH1000XM5 wireless industry leading noise cancelling over ear headphones"
    " with auto noise canceling optimizer crystal clear hands free calling alexa voice"
    " control 30 hour battery life quick charge black",
}
OTHER_HEADPHONES = [
    {"category": "electronics.audio.headphones", "brand": b, "price": p, "title": t}
    for b, p, t in [
        ("sonic", 149.0, "Sonic WH700 wireless headphones"),
        ("bose", 299.0, "QC noise cancelling headphones bluetooth"),
        ("sonic", 199.0, "Sonic earbuds wireless bluetooth black"),
        ("jbl", 99.0, "Tune over ear headphones black"),
        ("akg", 199.0, "K371 studio headphones"),
    ]
]


@pytest.mark.parametrize("exact_up_to", [20_000, 0])
def test_a_small_edit_gives_the_lists_a_replay_gives(exact_up_to: int) -> None:
    """A word added to a long title moves the content vector less than ``min_change``:
    the lists must still be those of the latest vector, as a replay of the compacted topic
    (which only holds the edited record) computes them; by exact scan or from the graph."""
    others = [(content_record(ENC, f"o{n}", m), 1) for n, m in enumerate(OTHER_HEADPHONES)]
    first = (content_record(ENC, "x", HEADPHONES), 2)
    edited = {**HEADPHONES, "title": str(HEADPHONES["title"]) + " bluetooth"}
    second = (content_record(ENC, "x", edited), 3)
    v1, v2 = (np.asarray(rec.vector) for rec, _ in (first, second))
    assert 0 < 1.0 - float(v1 @ v2) < ReplicaParams().index.min_change

    def run(flushes: list[list[tuple[VectorRecord, int]]]) -> dict[str, Neighbours | None]:
        replica = VectorReplica(ReplicaParams(list_size=5, exact_up_to=exact_up_to))
        for n, chunk in enumerate(flushes):
            replica.step(chunk, now_ms=n * 10_000, track=False)
        replica.flush(10**9)
        return replica.lists(sorted(replica.items()))

    assert run([[*others, first], [second]]) == run([[*others, second]])


def dyadic_changes(rng: np.random.Generator, step: int) -> list[tuple[VectorRecord, int]]:
    """5 to 15 changes among 60 items; entries are multiples of 1/4, so every score is
    exact whatever order a matrix product sums in (and ties abound)."""

    def dyadic(rng: np.random.Generator) -> np.ndarray:
        v = rng.integers(-2, 3, size=32) / 4.0
        v[0] = 1.0  # never zero
        return v

    return _random_changes(rng, step, (5, 16), 60, 0.1, dyadic)


def test_stale_sets_scored_in_blocks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    whole = VectorReplica(ReplicaParams(list_size=4))
    blocked = VectorReplica(ReplicaParams(list_size=4))
    scored = replica_module.best_scores
    blocks: list[int] = []

    def counted(vectors: np.ndarray, mat: np.ndarray) -> np.ndarray:
        blocks.append(-(-len(vectors) // max(1, replica_module.SCORE_BLOCK // len(mat))))
        return scored(vectors, mat)

    for step in range(40):
        changes = dyadic_changes(rng, step)
        expected = whole.step(changes, now_ms=step * 2_000)
        with monkeypatch.context() as m:
            m.setattr(replica_module, "SCORE_BLOCK", 100)  # over 50 items: a row a block
            m.setattr(replica_module, "best_scores", counted)
            got = blocked.step(changes, now_ms=step * 2_000)
        assert got == expected, f"step {step}"
        published = blocked.lists(sorted(got))
        whole.lists(sorted(expected))
        current = {i: found for i, found in published.items() if found is not None}
        assert current == blocked.lists(sorted(current)), f"step {step}"
    assert max(blocks) >= 15  # steps spanned many blocks
    vectors = (rng.integers(-2, 3, size=(50, 32)) / 4).astype(np.float32)
    items = (rng.integers(-2, 3, size=(60, 32)) / 4).astype(np.float32)
    one = np.round((vectors @ items.T).astype(np.float64), 4).max(axis=0)
    monkeypatch.setattr(replica_module, "SCORE_BLOCK", 7 * 60)
    assert np.array_equal(replica_module.best_scores(vectors, items), one)


def test_the_exact_stale_list_test_holds_a_block_of_scores_not_all() -> None:
    """3,000 items, 1,000 of them changed: their vectors before and after against every
    item were 6 M scores held at once three times over (float32, float64, rounded),
    about 120 MB; in blocks of ``SCORE_BLOCK`` (16 MiB) the step stays well under 40 MiB."""
    rng = np.random.default_rng(6)

    def unit(n: int) -> np.ndarray:
        m: np.ndarray = rng.normal(size=(n, 32)).astype(np.float32)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        return m

    replica = VectorReplica(ReplicaParams(list_size=20))
    first = unit(3_000)
    replica.step([(VectorRecord(f"i{n}", tuple(v.tolist())), 0) for n, v in enumerate(first)], 0)
    replica.flush(0)
    replica.lists([f"i{n}" for n in range(0, 3_000, 50)])
    moved = [(VectorRecord(f"i{n}", tuple(v.tolist())), 1) for n, v in enumerate(unit(1_000))]
    tracemalloc.start()
    try:
        stale = replica.step(moved, now_ms=10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(stale) > 1_000  # the test ran: changed items and lists they entered or left
    assert peak < 40 * 2**20


def test_lists_stay_fresh_while_churn_rebuilds_and_relabels() -> None:
    """Deleted items and new ones: rebuilds hand out labels anew, and the floors of the
    computed lists must follow their items."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(4, 32))
    replica = VectorReplica(ReplicaParams(list_size=4))
    published: dict[str, list[tuple[str, float]] | None] = {}
    born = 0
    for step in range(80):
        live = sorted(replica.items())
        changes = [(VectorRecord(i, None), step) for i in live[: int(rng.integers(0, 6))]]
        for _ in range(int(rng.integers(1, 6))):
            v = centres[rng.integers(4)] + rng.normal(scale=0.6, size=32)
            changes.append(
                (VectorRecord(f"n{born:04d}", tuple((v / np.linalg.norm(v)).tolist())), step)
            )
            born += 1
        stale = replica.step(changes, now_ms=step * 2_000)
        published.update(replica.lists(sorted(stale)))
        current = {i: found for i, found in published.items() if found is not None}
        assert current == replica.lists(sorted(current)), f"step {step}"
    assert replica.index.rebuilds >= 3
    assert len(replica.index.ids) <= 2 * len(replica) + 10
    assert len(replica.floor) <= 4 * len(replica) + 20
