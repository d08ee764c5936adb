"""Event-time decay in log space: half-life math by hand, monotonicity, order independence."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.decay import EPOCH_MS, NEG_INF, add, log_weight, value_at

HOUR_S = 3600.0
HOUR_MS = 3_600_000
T0 = 1_700_000_000_000  # a present-day timestamp
PROPERTY = settings(max_examples=200, deadline=None, database=None, derandomize=True)


def test_one_event_is_its_weight_at_its_own_time() -> None:
    s = add(NEG_INF, 2.5, T0, HOUR_S)
    assert value_at(s, T0, HOUR_S) == pytest.approx(2.5, rel=1e-9)


def test_one_event_halves_after_one_half_life() -> None:
    s = add(NEG_INF, 1.0, T0, HOUR_S)
    assert value_at(s, T0 + HOUR_MS, HOUR_S) == pytest.approx(0.5, rel=1e-9)
    assert value_at(s, T0 + 2 * HOUR_MS, HOUR_S) == pytest.approx(0.25, rel=1e-9)
    assert value_at(s, T0 + HOUR_MS // 2, HOUR_S) == pytest.approx(2**-0.5, rel=1e-9)


def test_half_life_is_in_seconds() -> None:
    s = add(NEG_INF, 1.0, T0, half_life_s=86_400)
    assert value_at(s, T0 + 86_400_000, 86_400) == pytest.approx(0.5, rel=1e-9)


def test_two_events_sum() -> None:
    # weight 1 at T0 and weight 3 one half-life later; seen at T0 + 2 half-lives:
    # 1 * 1/4 + 3 * 1/2 = 1.75
    s = add(add(NEG_INF, 1.0, T0, HOUR_S), 3.0, T0 + HOUR_MS, HOUR_S)
    assert value_at(s, T0 + 2 * HOUR_MS, HOUR_S) == pytest.approx(1.75, rel=1e-9)


def test_events_before_the_epoch() -> None:
    s = add(add(NEG_INF, 1.0, 0, HOUR_S), 1.0, 0, HOUR_S)
    assert value_at(s, HOUR_MS, HOUR_S) == pytest.approx(1.0, rel=1e-9)  # 2 * 1/2


def test_log_weight_is_the_log_of_the_weight_at_the_epoch() -> None:
    assert log_weight(1.0, EPOCH_MS, HOUR_S) == 0.0
    assert log_weight(math.e, EPOCH_MS, HOUR_S) == pytest.approx(1.0)
    assert log_weight(1.0, EPOCH_MS + HOUR_MS, HOUR_S) == pytest.approx(math.log(2))


def test_value_of_empty_score_is_zero() -> None:
    assert value_at(NEG_INF, T0, HOUR_S) == 0.0
    assert value_at(NEG_INF, 0, 1.0) == 0.0


def test_newer_event_outranks_older_equal_weight() -> None:
    older = add(NEG_INF, 1.0, T0, HOUR_S)
    newer = add(NEG_INF, 1.0, T0 + 1, HOUR_S)
    assert newer > older


def test_recent_small_beats_old_large_after_enough_half_lives() -> None:
    # 3 units three half-lives ago are worth 3/8 < 1/2 unit one half-life ago
    old = add(NEG_INF, 3.0, T0, HOUR_S)
    recent = add(NEG_INF, 1.0, T0 + 2 * HOUR_MS, HOUR_S)
    assert recent > old
    now = T0 + 3 * HOUR_MS
    assert value_at(old, now, HOUR_S) == pytest.approx(0.375)
    assert value_at(recent, now, HOUR_S) == pytest.approx(0.5)


events = st.lists(
    st.tuples(
        st.floats(0.01, 100.0),
        st.integers(T0 - 30 * 86_400_000, T0 + 30 * 86_400_000),
    ),
    min_size=1,
    max_size=30,
)


@PROPERTY
@given(events, st.floats(0.01, 100.0), st.integers(T0 - 10**10, T0 + 10**10))
def test_add_never_lowers(evs: list[tuple[float, int]], w: float, ts: int) -> None:
    s = NEG_INF
    for weight, t in evs:
        s = add(s, weight, t, HOUR_S * 72)
    assert add(s, w, ts, HOUR_S * 72) >= s


@PROPERTY
@given(events, st.randoms(use_true_random=False))
def test_order_does_not_matter(evs: list[tuple[float, int]], rnd: object) -> None:
    half_life = HOUR_S * 72

    def fold(seq: list[tuple[float, int]]) -> float:
        s = NEG_INF
        for weight, t in seq:
            s = add(s, weight, t, half_life)
        return s

    shuffled = list(evs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(shuffled) == pytest.approx(fold(evs), abs=1e-9)
    assert fold(list(reversed(evs))) == pytest.approx(fold(evs), abs=1e-9)


@PROPERTY
@given(events)
def test_score_matches_the_direct_sum(evs: list[tuple[float, int]]) -> None:
    half_life = HOUR_S * 72
    s = NEG_INF
    for weight, t in evs:
        s = add(s, weight, t, half_life)
    now = max(t for _, t in evs)
    direct = sum(w * 2 ** (-(now - t) / (half_life * 1000)) for w, t in evs)
    assert value_at(s, now, half_life) == pytest.approx(direct, rel=1e-9)
