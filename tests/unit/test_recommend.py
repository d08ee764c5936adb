"""The popularity discount: lists as the blend weighs them, computed once per batch."""

from __future__ import annotations

import dataclasses
import random

import pytest

from schemas.events import Interaction
from streams.blending import BlendWeights
from streams.recommend import Lists, Plan, discount, popularity_factors, recommend
from streams.user_state import UserState

# popular:all X 16, Y 4: factors X 16**-0.25 = 0.5, Y 4**-0.25 = 0.707, and Y's for
# every other item (the list's last count).
POPULAR = [["X", 16.0], ["Y", 4.0]]
Y = 4**-0.25


def _lists() -> Lists:
    return Lists(
        bought={"A1": [["X", 2.0], ["Y", 1.0]], "A2": [["Y", 4.0], ["Z", 1.0]]},
        viewed={"A1": [["Z", 0.5], ["W", 0.25]]},
        trending=[["X", 5.0]],
        category={"shoes": [["X", 2.0]]},
        popular=POPULAR,
    )


def test_popularity_factors() -> None:
    factors, rest = popularity_factors([["a", 81.0], ["b", 16.0]], 0.25)
    assert factors == {"a": pytest.approx(1 / 3), "b": pytest.approx(0.5)}
    assert rest == pytest.approx(0.5)
    assert popularity_factors([], 0.25) == ({}, 1.0)
    assert popularity_factors([["a", 81.0]], 0.0) == ({}, 1.0)
    assert popularity_factors([["a", 0.0]], 0.25)[1] > 0  # no division by zero


def test_discount_rescores_and_puts_the_best_first() -> None:
    factors, rest = popularity_factors(POPULAR, 0.25)
    # X 4 * 0.5 = 2.0, Y 3 * 0.707 = 2.12, W 2 * 0.707 = 1.41: Y comes first
    rows = discount([["X", 4.0], ["Y", 3.0], ["W", 2.0], ["V", 1.0]], factors, rest)
    assert rows[0] == ("Y", pytest.approx(3 * Y))
    assert dict(rows) == {
        "X": pytest.approx(2.0),
        "Y": pytest.approx(3 * Y),
        "W": pytest.approx(2 * Y),
        "V": pytest.approx(Y),
    }
    # an item without a factor bounds what follows it: W (2 * 0.707) beats the later X
    rows = discount([["W", 2.0], ["X", 1.5]], factors, rest)
    assert rows == [("W", pytest.approx(2 * Y)), ("X", pytest.approx(0.75))]
    assert discount([["X", 1.0]], factors, rest) == [("X", pytest.approx(0.5))]


def test_discount_finds_the_best_whatever_the_factors() -> None:
    rng = random.Random(7)
    for _ in range(500):
        items = [f"i{n}" for n in range(rng.randrange(1, 30))]
        popular = sorted(
            (
                [i, float(rng.randrange(1, 50))]
                for i in rng.sample(items, rng.randrange(0, len(items) + 1))
            ),
            key=lambda r: -r[1],
        )
        factors, rest = popularity_factors(popular, rng.choice([0.25, 0.5, 1.0]))
        lst = sorted(([i, float(rng.randrange(1, 9))] for i in items), key=lambda r: -r[1])
        if not factors:
            continue
        rows = discount(lst, factors, rest)
        assert rows[0][1] == max(score for _, score in rows)
        assert sorted(rows) == sorted((i, s * factors.get(i, rest)) for i, s in lst)


def test_discounted_lists_are_computed_once_per_power() -> None:
    lists = _lists()
    once = lists.discounted(0.25)
    assert lists.discounted(0.25) is once
    assert once.bought["A1"] == [("X", pytest.approx(1.0)), ("Y", pytest.approx(Y))]
    assert once.bought["A2"] == [("Y", pytest.approx(4 * Y)), ("Z", pytest.approx(Y))]
    assert once.viewed["A1"] == [("Z", pytest.approx(0.5 * Y)), ("W", pytest.approx(0.25 * Y))]
    # trending and category lists are not discounted
    assert (once.trending, once.category) == (lists.trending, lists.category)
    assert lists.bought["A1"] == [["X", 2.0], ["Y", 1.0]]  # the input is not changed
    assert lists.discounted(0.0) is lists
    assert Lists(bought=lists.bought).discounted(0.25).bought is lists.bought  # no popular:all


def test_recommend_blends_the_discounted_lists() -> None:
    # A1, A2 both only viewed (half weight), recency 0.8; hand weights of test_blending.
    # Discounted and scaled by their tops: bought A1 X 1.0, Y 0.707; viewed A1 (x0.6)
    # Z 0.6, W 0.3; bought A2 (x0.8) Y 0.8, Z 0.2. Each anchor's votes halved.
    state = UserState()
    for n, item in enumerate(("A2", "A1")):
        state.apply(Interaction(f"e{n}", "view", "u", item, 1_000 * (n + 1)), n, 20)
    hand = BlendWeights(bought=1.0, viewed=0.6, category=0.0, trending=0.0, recency=0.8)
    recs = recommend(state, Plan(["A1", "A2"], []), _lists(), lambda i: None, 10, hand)
    assert [(r.item_id, r.score, r.reason) for r in recs] == [
        ("Y", pytest.approx((Y + 0.8) / 2), "b:A2"),
        ("X", pytest.approx(0.5), "b:A1"),
        ("Z", pytest.approx(0.4), "v:A1"),
        ("W", pytest.approx(0.15), "v:A1"),
    ]
    off = dataclasses.replace(hand, popularity=0.0)
    plain = recommend(state, Plan(["A1", "A2"], []), _lists(), lambda i: None, 10, off)
    assert [r.item_id for r in plain][:2] == ["Y", "X"]
    assert plain[1].score == pytest.approx(0.5)  # X led A1's list undiscounted too
    assert plain[0].score == pytest.approx((0.5 + 0.8) / 2)
