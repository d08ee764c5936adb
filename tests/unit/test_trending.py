"""Bounded top-K of monotone scores: exact versus brute force, partials and their merge."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.trending import GLOBAL, Partial, TopK, Tops, merge, merge_category

PROPERTY = settings(max_examples=300, deadline=None, database=None, derandomize=True)
KEYS = [f"k{i}" for i in range(10)]


def brute_top(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


@st.composite
def monotone_offers(draw: st.DrawFn, ties: bool) -> tuple[int, list[tuple[str, float]]]:
    """k and a sequence of offers; each key's scores never go down.

    Without ``ties`` each key gets its own fractional part, so no two keys ever tie.
    """
    k = draw(st.integers(1, 6))
    steps = draw(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3)), max_size=60))
    current: dict[str, float] = {}
    offers = []
    for idx, inc in steps:
        key = KEYS[idx]
        base = current.get(key, 0.0 if ties else idx / 100)
        current[key] = base + inc
        offers.append((key, current[key]))
    return k, offers


def _run(k: int, offers: list[tuple[str, float]]) -> tuple[TopK, dict[str, float]]:
    top, latest = TopK(k), {}
    for key, score in offers:
        before = top.ranked()
        changed = top.offer(key, score)
        latest[key] = score
        assert changed == (top.ranked() != before), (key, score, before)
    return top, latest


@PROPERTY
@given(monotone_offers(ties=False))
def test_topk_is_exact_for_monotone_scores(case: tuple[int, list[tuple[str, float]]]) -> None:
    k, offers = case
    top, latest = _run(k, offers)
    assert top.ranked() == brute_top(latest, k)


@PROPERTY
@given(monotone_offers(ties=True))
def test_bug_topk_with_ties_matches_brute_force(case: tuple[int, list[tuple[str, float]]]) -> None:
    """Integer counts (popular lists) tie all the time; the kept set must follow the same
    (-score, key) order as ``ranked()`` and ``merge()``."""
    k, offers = case
    top, latest = _run(k, offers)
    assert top.ranked() == brute_top(latest, k)


def test_bug_topk_tie_at_the_cut_keeps_the_smaller_key() -> None:
    top = TopK(1)
    top.offer("a", 1.0)
    top.offer("b", 1.0)
    assert top.ranked() == [("a", 1.0)]  # what ranked()/merge() would put first


def test_topk_by_hand() -> None:
    top = TopK(2)
    assert top.offer("a", 1.0) is True
    assert top.offer("b", 3.0) is True
    assert top.offer("c", 0.5) is False  # below the floor
    assert top.offer("a", 1.0) is False  # same score again
    assert top.offer("c", 2.0) is True  # raised above a: a drops out
    assert top.ranked() == [("b", 3.0), ("c", 2.0)]
    assert top.offer("a", 1.5) is False  # raised, but still below c
    assert top.offer("a", 4.0) is True
    assert top.ranked() == [("a", 4.0), ("b", 3.0)]


def test_partial_offer_reports_changed_categories() -> None:
    p = Partial(2)
    assert p.offer("i1", "shoes", 10.0, 1.0) == {GLOBAL, "shoes"}
    assert p.offer("i1", "shoes", 10.0, 1.0) == set()  # nothing new
    assert p.offer("i1", "shoes", 10.0, 2.0) == {GLOBAL, "shoes"}  # popularity rose
    assert p.offer("i2", None, 5.0, 1.0) == {GLOBAL}  # no category: global list only
    assert p.offer("i3", "hats", 1.0, 0.5) == {"hats"}  # too weak for the global top 2
    assert p.offer("i4", "shoes", 11.0, 0.1) == {GLOBAL, "shoes"}  # trending only
    assert [i for i, _ in p.trending[GLOBAL].ranked()] == ["i4", "i1"]
    assert [i for i, _ in p.popular[GLOBAL].ranked()] == ["i1", "i2"]
    assert p.export(["shoes", "nope"]) == {
        "shoes": {"t": [("i4", 11.0), ("i1", 10.0)], "p": [("i1", 2.0), ("i4", 0.1)]}
    }


def test_merge_by_hand() -> None:
    a = [("x", 5.0), ("y", 1.0)]
    b = [("z", 3.0), ("w", 1.0)]
    assert merge([a, b], 3) == [("x", 5.0), ("z", 3.0), ("w", 1.0)]
    assert merge([a, b], 10) == [("x", 5.0), ("z", 3.0), ("w", 1.0), ("y", 1.0)]
    assert merge([], 3) == []


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(KEYS), st.integers(0, 5).map(float), max_size=10),
    st.integers(1, 4),
    st.integers(1, 6),
)
def test_merge_of_disjoint_partials_is_top_k_of_union(
    scores: dict[str, float], parts: int, k: int
) -> None:
    groups: list[dict[str, float]] = [{} for _ in range(parts)]
    for key, s in scores.items():
        groups[KEYS.index(key) % parts][key] = s
    partial_lists = [brute_top(g, k) for g in groups]
    assert merge(partial_lists, k) == brute_top(scores, k)


def test_merge_category_skips_partitions_without_the_category() -> None:
    partials: dict[int, dict[str, Any]] = {
        0: {"shoes": {"t": [["a", 2.0]], "p": [["a", 1.0]]}},
        1: {"hats": {"t": [["b", 9.0]], "p": [["b", 9.0]]}},
        2: {"shoes": {"t": [["c", 3.0], ["d", 1.0]], "p": [["d", 4.0]]}},
    }
    # wire-form entries are JSON arrays; compare them as tuples
    assert [tuple(e) for e in merge_category(partials, "shoes", "t", 2)] == [
        ("c", 3.0),
        ("a", 2.0),
    ]
    assert [tuple(e) for e in merge_category(partials, "shoes", "p", 5)] == [
        ("d", 4.0),
        ("a", 1.0),
    ]
    assert merge_category(partials, "bags", "t", 5) == []


def test_partial_round_trip_through_json() -> None:
    p = Partial(2)
    p.offer("i1", "shoes", 10.0, 1.0)
    p.offer("i2", "hats", 12.5, 3.0)
    p.offer("i3", "shoes", 11.0, 2.0)
    p.offer("i4", None, 1.0, 7.0)
    back = Partial.from_dict(orjson.loads(orjson.dumps(p.to_dict())))
    assert back.k == 2
    for cat in (GLOBAL, "shoes", "hats"):
        assert back.trending[cat].ranked() == p.trending[cat].ranked()
        assert back.popular[cat].ranked() == p.popular[cat].ranked()
    # the restored partial keeps working: same answers to the same next offers
    for item, cat, t, c in (("i5", "shoes", 10.5, 0.5), ("i1", "shoes", 13.0, 8.0)):
        assert back.offer(item, cat, t, c) == p.offer(item, cat, t, c)
    assert orjson.dumps(back.to_dict()) == orjson.dumps(p.to_dict())


def test_categories_are_loaded_once_on_first_use() -> None:
    stored = Partial(2)
    stored.offer("a", "shoes", 1.0, 1.0)
    calls: list[str] = []

    def load(cat: str) -> Tops | None:
        calls.append(cat)
        return stored.tops(cat) if cat in stored.trending else None

    p = Partial(2, load=load)
    assert p.offer("b", "shoes", 2.0, 2.0) == {GLOBAL, "shoes"}
    assert p.offer("c", "shoes", 0.5, 0.5) == set()  # below both kept entries
    assert p.export(["shoes"]) == {
        "shoes": {"t": [("b", 2.0), ("a", 1.0)], "p": [("b", 2.0), ("a", 1.0)]}
    }
    assert calls == [GLOBAL, "shoes"]
    back = Tops.from_dict(orjson.loads(orjson.dumps(p.tops("shoes").to_dict())))
    assert back.trending.ranked() == [("b", 2.0), ("a", 1.0)]
