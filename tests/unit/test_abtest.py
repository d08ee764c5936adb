"""Interval and test math against scipy and hand-computed values."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from streams.abtest import compare, msprt, wilson, z_test


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (81, 263), (50, 100), (999, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_without_trials_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def test_z_test_hand_computed() -> None:
    # 100/1000 vs 130/1000: pooled 0.115, se = sqrt(.115*.885*.002) = 0.014268, z = 2.1026
    p = z_test(100, 1000, 130, 1000)
    assert p == pytest.approx(2 * stats.norm.sf(0.03 / math.sqrt(0.115 * 0.885 * 0.002)))
    assert p == pytest.approx(0.03551, abs=1e-4)


def test_z_test_equals_chi_square_without_correction() -> None:
    table = [[100, 900], [130, 870]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert z_test(100, 1000, 130, 1000) == pytest.approx(chi2.pvalue)


def test_msprt_hand_computed() -> None:
    # p1 = .1, p2 = .3, n = 200 each: s2 = (.09 + .21)/200 = .0015, tau2 = .0025
    # log L = .5 ln(.0015/.004) + .0025 * .04 / (2 * .0015 * .004) = -0.49041 + 8.33333
    p = msprt(20, 200, 60, 200)
    assert p == pytest.approx(math.exp(-(0.5 * math.log(0.0015 / 0.004) + 0.0001 / 0.000012)))
    assert p < 1e-3


def test_msprt_is_more_conservative_than_z_at_the_same_data() -> None:
    assert msprt(100, 1000, 130, 1000) > z_test(100, 1000, 130, 1000)
    assert msprt(100, 1000, 100, 1000) == 1.0


def test_msprt_rarely_rejects_under_the_null_even_when_peeking() -> None:
    """Read after every 50 lists, 200 times: an always-valid p-value stays below alpha."""
    rng = random.Random(1)
    false_alarms = 0
    runs = 200
    for _ in range(runs):
        c = [0, 0]
        for n in range(1, 2001):
            c[0] += rng.random() < 0.1
            c[1] += rng.random() < 0.1
            if n % 50 == 0 and msprt(c[0], n, c[1], n) < 0.05:
                false_alarms += 1
                break
    assert false_alarms / runs <= 0.05


def test_compare_picks_a_significant_leader() -> None:
    v = compare({"A": (100, 1000), "B": (160, 1000)}, "msprt", 0.05)
    assert v.significant and v.leader == "B" and v.p_value < 0.05
    assert v.method.startswith("msprt")


def test_compare_without_evidence_has_no_leader() -> None:
    v = compare({"A": (10, 100), "B": (11, 100)}, "z", 0.05)
    assert not v.significant and v.leader is None and v.p_value > 0.5


def test_compare_applies_bonferroni_over_pairs() -> None:
    two = compare({"A": (100, 1000), "B": (130, 1000)}, "z", 0.05)
    three = compare({"A": (100, 1000), "B": (130, 1000), "C": (90, 1000)}, "z", 0.05)
    assert three.p_value == pytest.approx(3 * two.p_value)


@pytest.mark.parametrize(("k", "n"), [(0, 3), (10, 10), (0, 1), (1, 1), (11, 10), (-1, 5)])
def test_wilson_holds_the_observed_rate_even_at_the_edges(k: int, n: int) -> None:
    # (11, 10): a batch redone after a crash can count a click twice; it must not crash.
    low, high = wilson(k, n)
    rate = min(max(k, 0), n) / n
    assert 0.0 <= low <= rate <= high <= 1.0
    assert (rate == 0.0) <= (low == 0.0) and (rate == 1.0) <= (high == 1.0)


def test_tests_do_not_fail_on_more_clicks_than_impressions() -> None:
    assert 0.0 <= z_test(11, 10, 5, 10) <= 1.0
    assert 0.0 <= msprt(11, 10, 5, 10) <= 1.0
    assert compare({"A": (11, 10), "B": (5, 10)}).p_value <= 1.0


def test_a_variant_without_impressions_takes_no_part() -> None:
    """An arm never shown has no rate; ranked as 0 % it made the test depend on names."""
    one = compare({"A": (500, 5000), "B": (0, 0), "C": (0, 5000)}, "z")
    swapped = compare({"A": (500, 5000), "C": (0, 0), "B": (0, 5000)}, "z")
    assert one.p_value == swapped.p_value < 0.05
    assert compare({"A": (500, 5000), "B": (0, 0)}, "z").leader is None  # one arm: no test
