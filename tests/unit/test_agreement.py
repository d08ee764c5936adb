"""The bucketed protocol: buckets, cases, exclusions, the list each case is judged against."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from schemas.events import CatalogItem, Interaction
from streams.evaluation.agreement import (
    Answer,
    BucketCase,
    PipelineLists,
    Ranked,
    compare,
    judge,
    metrics,
    plan_buckets,
    run_buckets,
)
from streams.evaluation.protocol import Event
from streams.settings import load_settings

DAY = 86_400_000
T0 = 100 * DAY  # aligned to a day


def ev(n: int, user: str, item: str, ts: int, kind: str = "purchase") -> Interaction:
    return Interaction(f"e{n}", kind, user, item, ts)


def test_buckets_follow_event_time_and_catalogue_joins_the_first() -> None:
    events: list[Event] = [
        CatalogItem("A", T0 - 5 * DAY, category="c"),
        ev(0, "u1", "A", T0 + 1),  # cold user
        ev(1, "u1", "B", T0 + 2),  # case: u1 has A
        ev(2, "u2", "B", T0 + DAY + 5),  # cold user
        ev(3, "u1", "C", T0 + DAY + 6),  # case, excludes A and B
        ev(4, "u1", "C", T0 + 3 * DAY),  # repeat item
        ev(5, "u2", "D", T0 + 3 * DAY + 1, kind="view"),  # not a case type
    ]
    plan = plan_buckets(events, DAY)
    assert [b.start for b in plan.buckets] == [T0, T0 + DAY, T0 + 3 * DAY]
    assert isinstance(plan.buckets[0].events[0], CatalogItem)
    assert [len(b.events) for b in plan.buckets] == [3, 2, 2]
    assert plan.untested == 1
    assert [(c.user_id, c.item_id, c.exclude) for c in plan.cases] == [
        ("u1", "C", frozenset({"A", "B"}))
    ]
    assert (plan.n_interactions, plan.n_positives) == (6, 5)
    assert (plan.n_cold_user, plan.n_repeat_item) == (2, 1)  # u1 on A, u2 on B


def test_out_of_order_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="out of event-time order"):
        plan_buckets([ev(0, "u", "A", T0 + DAY), ev(1, "u", "B", T0)], DAY)


def test_judge_applies_exclusions_before_ranking() -> None:
    case = BucketCase(0, T0, "u", "T", frozenset({"x", "y"}))
    assert judge(case, [("x", 3.0), ("a", 2.0), ("y", 1.5), ("T", 1.0)]).rank == 2
    assert judge(case, [("a", 1.0)]).rank == 0
    assert judge(case, [(f"i{n}", 1.0) for n in range(20)] + [("T", 0.1)]).rank == 0


class Recorder:
    """A list source that shows each user the items applied so far, newest first."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.asked: list[tuple[int, frozenset[str]]] = []

    def advance(self, events: Sequence[Event]) -> None:
        self.applied += [e.item_id for e in events if isinstance(e, Interaction)]

    def lists(self, user_ids: Collection[str]) -> dict[str, Ranked]:
        self.asked.append((len(self.applied), frozenset(user_ids)))
        return {u: [(i, 1.0) for i in reversed(self.applied)] for u in user_ids}


def test_cases_see_the_lists_as_of_their_bucket_start() -> None:
    events: list[Event] = [
        ev(0, "u1", "A", T0),
        ev(1, "u2", "B", T0 + 1, kind="view"),
        ev(2, "u1", "B", T0 + DAY),  # judged on [B, A] minus {A}: rank 1
        ev(3, "u2", "C", T0 + DAY + 1, kind="view"),
        ev(4, "u2", "C", T0 + DAY + 2),  # repeat item: not a case
        ev(5, "u2", "A", T0 + DAY + 3),  # judged on [B, A] minus {B, C}: rank 1
    ]
    source = Recorder()
    answers = run_buckets(plan_buckets(events, DAY), source)
    # asked once, after the first bucket only: later events of the bucket are not visible
    assert source.asked == [(2, frozenset({"u1", "u2"}))]
    assert [(a.case.item_id, a.rank) for a in answers] == [("B", 1), ("A", 1)]
    assert source.applied == ["A", "B", "B", "C", "C", "A"]


def test_metrics_from_ranks() -> None:
    m = metrics([1, 3, 0, 15], ks=(10, 20))
    assert m["HitRate@10"] == 0.5
    assert m["HitRate@20"] == 0.75
    assert m["NDCG@10"] == pytest.approx((1 + 0.5) / 4)


def test_compare_finds_rank_list_and_score_differences() -> None:
    case = BucketCase(0, T0, "u", "T", frozenset())
    a = [judge(case, [("T", 1.0), ("b", 0.5)]), judge(case, [("a", 1.0), ("T", 0.9)])]
    b = [judge(case, [("T", 1.0), ("b", 0.4999)]), judge(case, [("T", 0.9), ("a", 0.9)])]
    c = compare(a, b)
    assert c.n_cases == 2
    assert [(d.rank_a, d.rank_b, d.first_diff) for d in c.rank_disagreements] == [(2, 1, 1)]
    assert (c.list_disagreements, c.raw_order_disagreements) == (1, 1)
    assert c.max_score_diff == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="same cases"):
        compare(a, b[:1])


def test_pipeline_lists_rank_like_the_pipeline() -> None:
    settings = load_settings(env={})
    source = PipelineLists(settings)
    source.advance(
        [
            ev(0, "u1", "A", T0, "view"),
            ev(1, "u1", "B", T0 + 1),
            ev(2, "u2", "A", T0 + 2, "view"),
        ]
    )
    lists = source.lists(["u2", "nobody"])
    want = [(r.item_id, round(r.score, 4)) for r in source.pipeline.recommend("u2")]
    assert lists["u2"] == want and want[0][0] == "B"
    assert lists["nobody"] == []
    assert isinstance(judge(BucketCase(0, T0, "u2", "B", frozenset({"A"})), want), Answer)
