"""Neighbour scores do not depend on the order the item side adds pair weights in."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Interaction
from streams.item_state import ItemState
from streams.user_state import UserState

TYPES = ["view", "click", "add_to_cart", "purchase"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(TYPES)), min_size=2, max_size=60),
    st.integers(0, 2**32),
)
def test_any_order_of_a_neighbours_weights_gives_the_same_score(
    history: list[tuple[int, str]], seed: int
) -> None:
    user = UserState()
    deltas = []
    for n, (item, kind) in enumerate(history):
        event = Interaction(f"e{n}", kind, "u", f"i{item}", 1_600_000_000_000 + n)
        deltas += [d for d in user.apply(event, n, 20).rows() if d[3] is not None]
    for d in deltas:
        assert type(d[1]) is int and d[1] > 0  # in units of 2**-24
    shuffled = deltas[:]
    random.Random(seed).shuffle(shuffled)
    states = []
    for order in (deltas, shuffled):
        by_item: dict[str, ItemState] = {}
        for d in order:
            by_item.setdefault(d[0], ItemState()).apply(d, 3600.0, 1000)
        states.append({i: s.neighbours for i, s in by_item.items()})
    assert states[0] == states[1]  # integer sums: exact in any order
