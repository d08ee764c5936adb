"""The candidate user-record encodings carry the same list; recall and percentiles."""

from __future__ import annotations

import orjson
import pytest

from streams.blending import Rec
from streams.evaluation.scale import (
    compact_user,
    expand_compact,
    list_agreement,
    percentile,
    recall_at_k,
)
from streams.serving import encode_user

ANCHORS = ["1004856", "12703015", "44600062"]
RECS = [
    Rec("1004750", 2.61834, "b:1004856"),
    Rec("1004788", 0.69412, "v:12703015"),
    Rec("3900821", 0.41, "c:electronics.smartphone"),
    Rec("1005007", 0.1206, "v:1004856"),
    Rec("5100816", 0.05, "t"),
]


def test_compact_user_round_trips_to_the_published_entries() -> None:
    current = orjson.loads(encode_user(RECS, ANCHORS, 1, "A", 1, 2))["items"]
    raw = compact_user(RECS, ANCHORS, 1, "A", 1, 2)
    expanded = expand_compact(raw)
    assert [e[0] for e in expanded] == [c[0] for c in current]
    assert [e[2] for e in expanded] == [c[2] for c in current]
    assert [e[1] for e in expanded] == [pytest.approx(c[1], abs=5e-4) for c in current]
    assert orjson.loads(raw)["recent"] == ANCHORS


def test_compact_user_writes_each_distinct_reason_once() -> None:
    recs = [Rec(str(1_000_000 + n), 1.0 / (n + 1), "b:1004856") for n in range(50)]
    doc = orjson.loads(compact_user(recs, ANCHORS, 1, "A", 1, 2))
    assert doc["w"] == ["b:1004856"]
    assert doc["r"] == [0] * 50
    assert len(compact_user(recs, ANCHORS, 1, "A", 1, 2)) < len(
        encode_user(recs, ANCHORS, 1, "A", 1, 2)
    )


def test_compact_user_without_scores_keeps_order_and_reasons() -> None:
    expanded = expand_compact(compact_user(RECS, ANCHORS, 1, "A", 1, 2, scores=False))
    assert [(e[0], e[1], e[2]) for e in expanded] == [(r.item_id, None, r.reason) for r in RECS]


def test_recall_at_k_counts_the_exact_answers_found() -> None:
    assert recall_at_k([[1, 2, 3], [4, 5, 9]], [[1, 2, 3], [4, 5, 6]]) == pytest.approx(5 / 6)
    assert recall_at_k([], []) == 1.0
    with pytest.raises(ValueError):
        recall_at_k([[1]], [])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_list_agreement_counts_whole_lists_orders_and_top_ten_sets() -> None:
    top = [[f"i{k}", 1.0 - k / 100, "t"] for k in range(12)]
    a = {"same": top, "score": top, "order": top, "tail": top, "gone": top}
    b = {
        "same": [list(row) for row in top],
        "score": [[top[0][0], 0.5, "t"], *top[1:]],  # a score differs
        "order": [top[1], top[0], *top[2:]],  # the first two swapped: same top-10 set
        "tail": [*top[:10], top[11], top[10]],  # only beyond the tenth
    }
    assert list_agreement(a, b) == {"lists": 1, "item_order": 2, "top10_set": 4}
    assert list_agreement({}, b) == {"lists": 0, "item_order": 0, "top10_set": 0}


def test_busiest_items_counts_every_partitions_list() -> None:
    from agents.scale_bench import busiest_items
    from streams.pipeline import LocalPipeline
    from streams.settings import Settings
    from streams.sources import synthetic

    pipe = LocalPipeline(Settings(partitions=4, neighbours_kept=8))
    pipe.apply_all(synthetic(n_users=60, n_items=30, n_events=1500, seed=3))
    got = busiest_items(pipe, top=5, repeats=1)
    busiest = sorted(pipe.items, key=lambda i: (-pipe.items[i].count, i))[:5]
    states = [pipe.items[i] for i in busiest]
    entries = [
        sum(len(lst) for lists in s.neighbours.values() for lst in lists.values()) for s in states
    ]
    assert got["neighbours_per_partition"] == 2
    assert got["busiest_5_entries"] == pytest.approx(sum(entries) / 5, abs=0.05)
    # lists of several partitions: more than one list's cap (2) per relation (2)
    assert got["busiest_5_entries"] > 4
    assert got["busiest_5_changelog_bytes"] > 0 and got["busiest_5_item_lists_us"] > 0


def test_item_side_batches_fold_what_event_by_event_folds() -> None:
    """The batch timing runs the worker's item-side path on the pipeline's own state:
    it must leave the state (and so the published lists) as event-by-event folding."""
    from agents.scale_bench import item_side_batches
    from schemas.events import Interaction
    from streams.pipeline import LocalPipeline
    from streams.settings import Settings
    from streams.sources import synthetic

    events = list(synthetic(n_users=60, n_items=40, n_events=2000, seed=5))
    catalog = [e for e in events if not isinstance(e, Interaction)]
    inter = [e for e in events if isinstance(e, Interaction)]
    pipes = [LocalPipeline(Settings(partitions=4, neighbours_kept=12)) for _ in range(2)]
    for pipe in pipes:
        pipe.apply_all([*catalog, *inter[:500]])
    pipes[0].apply_all(inter[500:])
    got = item_side_batches(pipes[1], inter[500:], batch=100)
    reference, batched = pipes
    assert got["batches"] == -(-len(inter[500:]) // 100)
    assert got["batch_lists"] > 0 and got["batch_states"] > 0
    assert batched.items == reference.items
    assert {i: batched.item_list(r, i) for i in reference.items for r in ("bought", "viewed")} == {
        i: reference.item_list(r, i) for i in reference.items for r in ("bought", "viewed")
    }
    assert batched.users == reference.users


def test_profile_shares_split_a_workers_samples_by_handler_and_module() -> None:
    from agents.bench import _ROOT, OUTSIDE, profile_shares

    lib = "/venv/lib/python3.11/site-packages"
    lines = [
        # users' lists run inside the ingest's batch: counted as users' lists
        f"run ({lib}/mode/services.py:1);handle ({_ROOT}agents/ingest.py:80);"
        f"publish ({_ROOT}agents/user_lists.py:110);blend ({_ROOT}streams/blending.py:9) 30",
        f"handle ({_ROOT}agents/items.py:60);item_list ({_ROOT}streams/recommend.py:127) 50",
        f"handle ({_ROOT}agents/items.py:90);put ({_ROOT}agents/tables.py:50);"
        f"send ({lib}/aiokafka/producer/producer.py:300) 10",
        f"_run_once ({lib}/asyncio/base_events.py:1900) 10",
        "not a sample line",
    ]
    got = profile_shares(lines, seconds=2.0, rate_hz=100)
    assert got["samples"] == 100 and got["busy"] == 0.5
    assert got["parts"] == {"item side": 0.6, "users' lists": 0.3, OUTSIDE: 0.1}
    assert got["modules"] == {
        "streams/recommend.py": 0.5,
        "streams/blending.py": 0.3,
        "agents/tables.py": 0.1,
        "libraries": 0.1,
    }


def test_loop_lag_quantiles_come_from_the_heartbeats_between_two_snapshots() -> None:
    from agents.bench import lag_quantiles

    before = {0.005: 100.0, 0.05: 10.0, float("inf"): 0.0}
    # 1,000 more heartbeats: 980 within 5 ms, 15 within 50 ms, 5 past the last bucket
    after = {0.005: 1080.0, 0.05: 25.0, float("inf"): 5.0}
    assert lag_quantiles(before, after) == {
        "heartbeats": 1000,
        "p50_le_s": 0.005,
        "p99_le_s": 0.05,
    }
    tail = {0.005: 1070.0, 0.05: 11.0, float("inf"): 19.0}  # 19 of 990 past 50 ms
    assert lag_quantiles(before, tail)["p99_le_s"] == float("inf")
    assert lag_quantiles({}, {}) == {"heartbeats": 0}


def test_exact_top_in_blocks_finds_the_brute_force_top() -> None:
    import numpy as np

    from agents.scale_bench import clustered_vectors, exact_top

    mat = clustered_vectors(3_000, 8, 5, seed=1)
    queries = mat[:130] + 0.05  # two blocks of queries
    truth = [set(np.argsort(-(q @ mat.T))[:10].tolist()) for q in queries]
    for rows in (7, 1_000, 1_000_000):  # blocks smaller than k, uneven, one block
        assert [set(found) for found in exact_top(mat, queries, 10, rows)] == truth
