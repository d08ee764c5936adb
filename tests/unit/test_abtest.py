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
