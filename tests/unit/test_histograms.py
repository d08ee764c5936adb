"""Cumulative buckets and quantile estimates of histograms."""

from __future__ import annotations

import math

import pytest

from streams.histograms import cumulative, quantile

BOUNDS = (0.1, 0.5, 1.0)


def test_cumulative_adds_up_buckets_and_ends_with_inf() -> None:
    counts = {"0.1": 2.0, "1.0": 3.0, "+Inf": 1.0}
    assert cumulative(counts, BOUNDS) == [(0.1, 2.0), (0.5, 2.0), (1.0, 5.0), (math.inf, 6.0)]


def test_quantile_interpolates_within_the_bucket() -> None:
    buckets = cumulative({"0.5": 10.0}, BOUNDS)
    assert quantile(0.5, buckets) == pytest.approx(0.3)  # halfway through (0.1, 0.5]
    assert quantile(1.0, buckets) == pytest.approx(0.5)


def test_quantile_in_the_first_bucket_starts_at_zero() -> None:
    assert quantile(0.5, cumulative({"0.1": 4.0}, BOUNDS)) == pytest.approx(0.05)


def test_quantile_beyond_the_last_bound_is_the_last_bound() -> None:
    assert quantile(0.99, cumulative({"0.1": 1.0, "+Inf": 99.0}, BOUNDS)) == 1.0


def test_no_observations_no_quantile() -> None:
    assert quantile(0.5, cumulative({}, BOUNDS)) is None
    assert quantile(0.5, []) is None
