"""The HNSW index wrapper: coalesced updates, deletes, growth, replica catch-up, recall."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streams.models import index as index_module
from streams.models.index import IndexParams, VectorIndex, ann_recall
from streams.models.vectors import ItemVectors, VectorParams, VectorRecord

DIM = 8


def unit(seed: int, n: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def small(**kw: int) -> VectorIndex:
    return VectorIndex(IndexParams(dim=DIM, initial_capacity=8, **kw))


def test_updates_reach_queries_only_at_flush() -> None:
    idx = small()
    v = unit(1)[0]
    idx.upsert("a", v)
    assert idx.query(v, 1) == []
    assert idx.flush() == 1
    assert idx.query(v, 1)[0][0] == "a"
    assert abs(idx.query(v, 1)[0][1] - 1.0) < 1e-5


def test_flush_is_due_on_size_or_event_time() -> None:
    idx = small(flush_size=3, flush_every_ms=1000)
    vs = unit(2, 5)
    idx.upsert("a", vs[0])
    assert idx.maybe_flush(0) == 1  # the first flush starts the timer
    idx.upsert("b", vs[1])
    assert not idx.due(500)
    assert idx.due(1000)
    idx.upsert("c", vs[2])
    idx.upsert("d", vs[3])
    assert idx.due(1)  # three pending: full
    assert idx.maybe_flush(1) == 3 and len(idx) == 4


def test_only_the_latest_vector_per_item_is_written() -> None:
    idx = small()
    vs = unit(3, 3)
    for v in vs:
        idx.upsert("a", v)
    assert idx.flush() == 1
    assert idx.query(vs[2], 1)[0][0] == "a"
    assert abs(idx.query(vs[2], 1)[0][1] - 1.0) < 1e-5


def test_small_moves_are_not_rewritten() -> None:
    idx = small()
    v = unit(4)[0]
    idx.upsert("a", v)
    idx.flush()
    nudged = v + 0.001 * unit(5)[0]
    idx.upsert("a", nudged / np.linalg.norm(nudged))
    assert idx.flush() == 0
    idx.upsert("a", -v)
    assert idx.flush() == 1


def test_delete_hides_and_readding_restores() -> None:
    idx = small()
    vs = unit(6, 4)
    for n, v in enumerate(vs):
        idx.upsert(f"i{n}", v)
    idx.flush()
    idx.delete("i0")
    assert "i0" in idx
    idx.flush()
    assert "i0" not in idx and len(idx) == 3
    assert "i0" not in [it for it, _ in idx.query(vs[0], 3)]
    idx.upsert("i0", vs[0])
    idx.flush()
    assert idx.query(vs[0], 1)[0][0] == "i0"


def test_grows_past_its_capacity() -> None:
    idx = small()
    vs = unit(7, 300)
    for start in range(0, 300, 50):  # several in-place flushes, each growing the graph
        for n in range(start, start + 50):
            idx.upsert(f"i{n}", vs[n])
        idx.flush()
    assert len(idx) == 300
    assert idx.graph.get_max_elements() >= 300
    assert all(idx.query(vs[n], 1)[0][0] == f"i{n}" for n in range(0, 300, 37))


def test_large_rewrites_build_aside_and_swap() -> None:
    idx = small()
    vs = unit(8, 100)
    for n in range(100):
        idx.upsert(f"i{n}", vs[n])
    idx.flush()
    rebuilds = idx.rebuilds
    moved = unit(9, 100)
    for n in range(100):
        idx.upsert(f"i{n}", moved[n])
    idx.flush()
    assert idx.rebuilds == rebuilds + 1
    assert idx.query(moved[42], 1)[0][0] == "i42"


def test_replica_catches_up_from_vector_change_records() -> None:
    vectors = ItemVectors(VectorParams(dim=DIM, seed=1))
    primary = small()
    log: list[VectorRecord] = []  # what the compacted item-vectors topic would carry
    for n in range(30):
        vectors.set_content(f"i{n}", {"category": f"c.{n % 3}", "title": f"t{n}"})
    for n in range(1, 30):
        vectors.learn(n, [n - 1], [1.0])
    vectors.set_content("i5", {"deleted": True})
    records = vectors.drain()
    log.extend(records)
    primary.apply(records)
    primary.flush()
    replica = small()
    replica.apply(log)
    replica.flush()
    assert "i5" not in replica and len(replica) == len(primary) == 29
    for n in range(0, 30, 4):
        q = vectors.vector(n)
        assert replica.query(q, 5) == primary.query(q, 5)


def test_replica_applies_records_in_order_last_one_wins() -> None:
    a, b = unit(10, 2)
    replica = small()
    replica.apply(
        [VectorRecord("x", tuple(a)), VectorRecord("x", None), VectorRecord("x", tuple(b))]
    )
    replica.flush()
    assert replica.query(b, 1)[0][0] == "x"
    replica.apply([VectorRecord("x", None)])
    replica.flush()
    assert "x" not in replica


def test_pickle_round_trip_keeps_the_graph() -> None:
    idx = small()
    vs = unit(11, 50)
    for n in range(50):
        idx.upsert(f"i{n}", vs[n])
    idx.flush()
    copy = pickle.loads(pickle.dumps(idx))
    assert copy.query(vs[3], 5) == idx.query(vs[3], 5)
    copy.upsert("new", vs[0])
    copy.flush()
    assert "new" in copy and "new" not in idx


def test_ann_recall_against_exact_search() -> None:
    idx = VectorIndex(IndexParams(dim=DIM))
    vs = unit(12, 2000)
    for n in range(2000):
        idx.upsert(f"i{n}", vs[n])
    idx.flush()
    assert ann_recall(idx, unit(13, 50), 10) >= 0.9


def filled(params: IndexParams, vs: np.ndarray) -> VectorIndex:
    idx = VectorIndex(params)
    for n, v in enumerate(vs):
        idx.upsert(f"i{n}", v)
    idx.flush()
    return idx


def test_calibration_widens_ef_until_the_sample_reaches_the_target() -> None:
    # A sparse graph searched narrowly misses many true neighbours; calibration must find
    # the narrowest breadth that does not, and the recall must hold on queries it never saw.
    params = IndexParams(dim=DIM, m=4, ef_construction=8, ef=2, ef_max=512, calibrate_from=500)
    idx = filled(params, unit(20, 4000))
    assert idx.calibrated_at == 4000
    assert idx.recall is not None and idx.recall >= 0.95
    assert idx.ef > params.ef
    sample = idx.calibration_sample()
    assert idx.sample_recall(sample, idx.ef) == idx.recall
    assert idx.sample_recall(sample, idx.ef // 2) < 0.95  # one step narrower falls short
    held_out = unit(21, 200)
    assert ann_recall(idx, held_out, 10) >= 0.9
    chosen, idx.ef = idx.ef, params.ef
    assert ann_recall(idx, held_out, 10) < 0.9  # the narrow search really was worse
    idx.ef = chosen


def test_calibration_asks_what_the_reader_asks() -> None:
    # More neighbours per query are harder to get all right: the same graph needs at least
    # as wide a search for 30 neighbours as for 10, and the item itself is not counted.
    vs = unit(28, 4000)
    base = {"dim": DIM, "m": 4, "ef_construction": 8, "ef": 2, "ef_max": 512}
    narrow = filled(IndexParams(**base, calibrate_from=500, calibrate_k=5), vs)
    wide = filled(IndexParams(**base, calibrate_from=500, calibrate_k=30), vs)
    assert wide.ef >= narrow.ef and wide.ef > 2
    sample = wide.calibration_sample()
    assert sample.k == 30 and len(sample.kth) == 200
    own = {int(lb) for lb in sample.own}
    assert len(own) == 200 and own <= set(wide.indexed)


def test_items_with_equal_vectors_are_interchangeable_for_recall() -> None:
    # 40 distinct vectors, 50 copies each: any 10 copies of the query's vector are an
    # exact top 10, so returning other copies than a brute-force sort would is no miss
    # (counting by item id, recall would be about 10 / 50 and calibration would run to
    # ef_max for nothing).
    base = unit(23, 40)
    params = IndexParams(dim=DIM, calibrate_from=500)
    idx = filled(params, np.repeat(base, 50, axis=0))
    assert idx.ef < params.ef_max and idx.recall is not None and idx.recall >= 0.95
    assert ann_recall(idx, base, 10) >= 0.9


def test_calibration_runs_again_on_growth_shrinkage_and_churn() -> None:
    params = IndexParams(dim=DIM, calibrate_from=1000)
    vs = unit(24, 4000)
    idx = filled(params, vs[:900])
    assert idx.calibrated_at == 0 and idx.recall is None  # below calibrate_from

    def add(lo: int, hi: int, source: np.ndarray = vs) -> None:
        for n in range(lo, hi):
            idx.upsert(f"i{n}", source[n])
        idx.flush()

    add(900, 1500)
    assert idx.calibrated_at == 1500 and idx.changed_since == 0
    add(1500, 2900)
    assert idx.calibrated_at == 1500 and idx.changed_since == 1400  # 2,900 < 2 x 1,500
    add(2900, 3000)
    assert idx.calibrated_at == 3000  # doubled
    moved = unit(29, 4000)
    add(0, 2999, moved)  # rewritten: 2,999 changes, one short of the 3,000 it held
    assert idx.calibrated_at == 3000 and idx.changed_since == 2999
    add(2999, 3000, moved)
    assert idx.calibrated_at == 3000 and idx.changed_since == 0  # churn: measured again
    for n in range(1500):
        idx.delete(f"i{n}")
    idx.flush()
    assert idx.calibrated_at == 1500  # halved


def test_pickle_keeps_the_calibrated_ef() -> None:
    params = IndexParams(dim=DIM, m=4, ef_construction=8, ef=2, calibrate_from=500)
    idx = filled(params, unit(25, 2000))
    copy = pickle.loads(pickle.dumps(idx))
    assert (copy.ef, copy.recall, copy.calibrated_at) == (idx.ef, idx.recall, idx.calibrated_at)
    assert copy.params == params


def test_exact_kth_in_blocks_equals_one_full_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "BLOCK", 7)  # 300 vectors: 43 blocks, a ragged last one
    idx = filled(IndexParams(dim=DIM), unit(26, 300))
    queries = unit(27, 5)
    full = np.sort(queries @ np.stack(list(idx.indexed.values())).T, axis=1)[:, ::-1]
    for k in (1, 3, 10):
        assert np.allclose(idx.exact_kth(queries, k), full[:, k - 1])


def test_exact_kth_with_fewer_items_than_k_or_none() -> None:
    idx = filled(IndexParams(dim=DIM), unit(30, 3))
    assert np.all(np.isneginf(idx.exact_kth(unit(31, 2), 5)))
    assert np.all(np.isneginf(VectorIndex(IndexParams(dim=DIM)).exact_kth(unit(31, 2), 1)))


def test_a_small_move_scores_with_the_latest_vector() -> None:
    # The graph keeps the vector it holds (the move is under min_change), but a score
    # must not depend on which flush brought which vector.
    vs = unit(32, 20)
    idx = filled(small().params, vs)
    nudged = vs[0] + 0.05 * unit(33)[0]
    nudged /= np.linalg.norm(nudged)
    assert 0 < 1.0 - float(vs[0] @ nudged) < idx.params.min_change
    idx.upsert("i0", nudged)
    assert idx.flush() == 0  # not rewritten in the graph
    q = unit(34)[0]
    found = dict(idx.query(q, 20))
    assert found["i0"] == pytest.approx(float(nudged @ q), abs=1e-6)
    assert list(found.values()) == sorted(found.values(), reverse=True)
    labels, scores = idx.scan(q)
    assert scores[list(labels).index(idx.labels["i0"])] == pytest.approx(float(nudged @ q))


def test_small_moves_that_add_up_reach_the_graph() -> None:
    idx = small()
    v = unit(35)[0]
    idx.upsert("a", v)
    idx.flush()
    away = unit(36)[0]
    away -= (away @ v) * v
    away /= np.linalg.norm(away)
    written = []
    for angle in np.linspace(0.1, 0.5, 5):  # 0.1 rad apart: each step under min_change
        moved = np.cos(angle) * v + np.sin(angle) * away
        idx.upsert("a", moved.astype(np.float32))
        written.append(idx.flush())
    assert written[0] == 0 and sum(written) >= 1  # against the graph's vector, not the last


def test_churn_does_not_pile_up_deleted_elements() -> None:
    # Deleted elements stay in the graph (mark_deleted) and queries walk them: once they
    # would outnumber the live ones, the graph is built anew and the labels compacted.
    idx = small()
    vs = unit(37, 1300)
    for n in range(100):
        idx.upsert(f"i{n}", vs[n])
    idx.flush()
    live = [f"i{n}" for n in range(100)]
    for r in range(60):  # 1,200 deletes and as many new items
        for item in live[:20]:
            idx.delete(item)
        live = live[20:] + [f"i{n}" for n in range(100 + 20 * r, 120 + 20 * r)]
        for item in live[-20:]:
            idx.upsert(item, vs[int(item[1:])])
        idx.flush()
        assert len(idx) == 100
        assert idx.graph.get_current_count() <= 2 * len(idx) + 20
        assert len(idx.ids) == len(idx.labels) <= 2 * len(idx) + 20
    assert idx.rebuilds > 0 and idx.graph.get_max_elements() <= 4 * len(idx)
    assert all(idx.ids[idx.labels[item]] == item for item in live)
    assert sorted(idx.ids[lb] for lb in idx.indexed) == sorted(live)
    assert all(idx.query(vs[int(item[1:])], 1)[0][0] == item for item in live[::7])
