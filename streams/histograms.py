"""Cumulative buckets and quantile estimates of Prometheus-style histograms (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def cumulative(counts: Mapping[str, float], bounds: Sequence[float]) -> list[tuple[float, float]]:
    """``[(upper bound, observations <= bound), ...]`` ending with ``+inf``.

    ``counts`` maps a bucket's upper bound (as text, ``"+Inf"`` for the last) to the
    observations that fell into that bucket alone.
    """
    out: list[tuple[float, float]] = []
    total = 0.0
    for le in (*map(float, bounds), math.inf):
        total += counts.get("+Inf" if le == math.inf else repr(le), 0.0)
        out.append((le, total))
    return out


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Estimate quantile ``q`` (0-1) by linear interpolation within a bucket.

    Same rule as PromQL's ``histogram_quantile``: a quantile in the ``+inf`` bucket is
    reported as the largest finite bound. ``None`` when there are no observations.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower
