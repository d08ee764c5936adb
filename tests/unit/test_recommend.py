"""The popularity discount: factors from popular:all, applied inside the blend."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from schemas.events import Interaction
from streams.blending import BlendWeights, _top, blend, popularity_factors
from streams.recommend import Lists, Plan, recommend
from streams.user_state import BOUGHT, VIEWED, UserState

# popular:all X 16, Y 4: X's factor (16 / 4) ** -0.25 = 0.707; Y, the last, and every item
# outside the list keep 1.
POPULAR = [["X", 16.0], ["Y", 4.0]]
F = 4**-0.25


def _lists() -> Lists:
    return Lists(
        bought={"A1": [["X", 2.0], ["Y", 1.0]], "A2": [["Y", 4.0], ["Z", 1.0]]},
        viewed={"A1": [["Z", 0.5], ["W", 0.25]]},
        trending=[["X", 5.0]],
        category={"shoes": [["X", 2.0]]},
        popular=POPULAR,
    )


def test_popularity_factors() -> None:
    assert popularity_factors([["a", 81.0], ["b", 16.0], ["c", 16.0]], 0.25) == {
        "a": pytest.approx(2 / 3)
    }
    assert popularity_factors(POPULAR, 0.5) == {"X": pytest.approx(0.5)}
    assert popularity_factors([], 0.25) == {}
    assert popularity_factors([["a", 81.0], ["b", 1.0]], 0.0) == {}
    assert popularity_factors([["a", 3.0], ["b", 0.0]], 0.25)["a"] > 0  # no division by 0


def test_top_looks_only_as_far_as_it_must() -> None:
    factors = {"X": 0.5, "Y": 0.9}
    assert _top([["X", 4.0], ["Y", 3.0], ["W", 2.0], ["X2", 1.9]], factors) == pytest.approx(2.7)
    assert _top([["X", 4.0], ["W", 1.5], ["Y", 1.4]], factors) == pytest.approx(2.0)
    assert _top([["X", 0.0]], factors) == 1.0  # all zero: scaled by 1
    rng = random.Random(7)
    for _ in range(500):
        items = [f"i{n}" for n in range(rng.randrange(1, 30))]
        factors = {i: rng.uniform(0.05, 1.0) for i in rng.sample(items, rng.randrange(len(items)))}
        lst = sorted(([i, float(rng.randrange(1, 9))] for i in items), key=lambda r: -r[1])
        assert _top(lst, factors) == max(raw * factors.get(i, 1.0) for i, raw in lst)


def test_factors_are_computed_once_per_lists_and_power() -> None:
    lists = _lists()
    assert lists.popularity(0.25) is lists.popularity(0.25)
    assert lists.popularity(0.25) == {"X": pytest.approx(F)}
    assert lists.popularity(0.0) == {}


def test_recommend_discounts_the_neighbour_lists() -> None:
    # A1, A2 both only viewed (half weight), recency 0.8; hand weights of test_blending.
    # With X's factor: bought A1 X 2 * 0.707 = 1.414 (top), Y 1 -> X 1.0, Y 0.707; viewed
    # A1 (x0.6) Z 0.6, W 0.3; bought A2 (x0.8) Y 0.8, Z 0.2. Each anchor's votes halved.
    state = UserState()
    for n, item in enumerate(("A2", "A1")):
        state.apply(Interaction(f"e{n}", "view", "u", item, 1_000 * (n + 1)), n, 20)
    hand = BlendWeights(bought=1.0, viewed=0.6, category=0.0, trending=0.0, recency=0.8)
    recs = recommend(state, Plan(["A1", "A2"], []), _lists(), lambda i: None, 10, hand)
    assert [(r.item_id, r.score, r.reason) for r in recs] == [
        ("Y", pytest.approx((F + 0.8) / 2), "b:A2"),
        ("X", pytest.approx(0.5), "b:A1"),
        ("Z", pytest.approx(0.4), "v:A1"),
        ("W", pytest.approx(0.15), "v:A1"),
    ]
    off = dataclasses.replace(hand, popularity=0.0)
    plain = recommend(state, Plan(["A1", "A2"], []), _lists(), lambda i: None, 10, off)
    assert [(r.item_id, r.score) for r in plain][:2] == [
        ("Y", pytest.approx((0.5 + 0.8) / 2)),
        ("X", pytest.approx(0.5)),
    ]


def test_the_discount_equals_discounting_each_list_first() -> None:
    # The blend applies an item's factor once to the sum of its neighbour votes; that
    # must equal multiplying each list entry first. Trending and category lists are not
    # discounted.
    rng = random.Random(3)
    items = [f"i{n}" for n in range(40)]
    for _ in range(200):
        factors = {i: rng.uniform(0.1, 1.0) for i in rng.sample(items, 10)}

        def scored(n: int) -> list[list[Any]]:
            return sorted(
                ([i, float(rng.randrange(1, 99))] for i in rng.sample(items, n)),
                key=lambda row: -float(row[1]),
            )

        recent = ["a0", "a1", "a2"]
        neighbours = {rel: {a: scored(8) for a in recent} for rel in (BOUGHT, VIEWED)}
        trending, category = scored(10), {"c": scored(5)}
        args = (trending, category, set(), lambda i: True, 10, BlendWeights())
        got = blend(recent, neighbours, *args, view_only={"a1"}, discount=factors)
        first = {
            rel: {
                a: sorted(
                    ([i, float(s) * factors.get(str(i), 1.0)] for i, s in lst),
                    key=lambda row: -float(row[1]),
                )
                for a, lst in lists.items()
            }
            for rel, lists in neighbours.items()
        }
        want = blend(recent, first, *args, view_only={"a1"})
        assert [(r.item_id, r.reason) for r in got] == [(r.item_id, r.reason) for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want])
