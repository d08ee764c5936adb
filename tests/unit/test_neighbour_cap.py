"""The heap-based neighbour cap drops exactly what a full scan would (streams/item_state.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.item_state import ItemState, _descending
from streams.user_state import delta

HALF_LIFE_S = 3600.0


def _scan_apply(scores: dict[str, float], other: str, score: float, kept: int) -> None:
    """The reference: a full scan for the weakest, last in ``top()`` order."""
    scores[other] = score
    if len(scores) > kept:
        del scores[max(scores, key=lambda k: (-scores[k], k))]


# Few ids, few distinct weights and times: ties on score are frequent, as in real traffic.
deltas = st.lists(
    st.tuples(
        # prefixes of each other (i1, i10, i1é) and non-ASCII ids: the tie order is by id
        st.sampled_from([*(f"i{n}" for n in range(12)), "i1é", "é", "i1\U0001f600"]),
        st.sampled_from([0.5, 1.0, 2.0]),
        st.integers(0, 5).map(lambda t: 1_600_000_000_000 + t * 60_000),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(deltas, st.integers(1, 6))
def test_cap_keeps_what_a_full_scan_keeps(steps: list[tuple[str, float, int]], kept: int) -> None:
    state = ItemState()
    reference: dict[str, float] = {}
    for other, weight, ts in steps:
        state.apply(delta("x", weight, ts, "viewed", other), HALF_LIFE_S, kept)
        score = reference.get(other, 0.0) + weight
        _scan_apply(reference, other, score, kept)
        assert state.neighbours["viewed"][0] == reference
        heap = state.heaps.get(("viewed", 0))
        assert heap is None or len(heap) == len(reference)  # one entry per neighbour


def test_a_loaded_state_rebuilds_its_heap_and_keeps_capping() -> None:
    state = ItemState()
    for n in range(10):
        state.apply(delta("x", 1.0 + n, 1_600_000_000_000, "bought", f"i{n}"), HALF_LIFE_S, 5)
    loaded = ItemState.from_dict(state.to_dict())
    assert loaded == state and not loaded.heaps  # the heap is derived, never serialised
    loaded.apply(delta("x", 100.0, 1_600_000_000_000, "bought", "new"), HALF_LIFE_S, 5)
    assert [k for k, _ in loaded.top("bought", 5)] == ["new", "i9", "i8", "i7", "i6"]


@settings(max_examples=500, deadline=None)
@given(st.text(), st.text())
def test_descending_keys_reverse_the_id_order(a: str, b: str) -> None:
    """Ties on score drop the greatest id: the heap's key must sort ids in reverse."""
    assert (_descending(a) < _descending(b)) == (a > b)
    assert (_descending(a) == _descending(b)) == (a == b)
