"""first_offset_at agrees with a linear scan on any non-decreasing timestamps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.timeindex import first_offset_at


@given(st.lists(st.integers(0, 50), max_size=60), st.integers(-5, 60))
def test_matches_a_linear_scan(raw: list[int], target: int) -> None:
    stamps = sorted(raw)
    reads: list[int] = []

    def ts_of(offset: int) -> int:
        reads.append(offset)
        return stamps[offset]

    want = next((i for i, t in enumerate(stamps) if t >= target), len(stamps))
    assert first_offset_at(ts_of, 0, len(stamps), target) == want
    assert len(reads) <= max(1, len(stamps)).bit_length()


def test_searches_only_the_given_range() -> None:
    stamps = [5, 6, 7, 8, 9]
    assert first_offset_at(stamps.__getitem__, 2, 5, 0) == 2
    assert first_offset_at(stamps.__getitem__, 2, 4, 100) == 4
