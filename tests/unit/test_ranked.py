"""best_first: the order of every published list, highest score first, ties by key."""

from __future__ import annotations

from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ranked import best_first

# Few distinct scores: ties are common, as with pair weights on a grid.
scores = st.dictionaries(
    st.text(max_size=4), st.sampled_from([0.0, 0.25, 0.5, 1.0, 1e-9, 3.5]), max_size=60
)


@settings(max_examples=400, deadline=None)
@given(scores)
def test_best_first_is_score_descending_then_key(d: dict[str, float]) -> None:
    assert list(best_first(d)) == sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))


@settings(max_examples=200, deadline=None)
@given(scores, st.integers(0, 70))
def test_a_prefix_is_the_same_prefix(d: dict[str, float], n: int) -> None:
    full = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
    assert list(islice(best_first(d), n)) == full[:n]


def test_empty() -> None:
    assert list(best_first({})) == []
