"""Event-time decayed scores kept in log space.

A decayed sum ``S(now) = sum_i w_i * 2**(-(now - t_i) / half_life)`` is stored as
``L = log(sum_i w_i * 2**((t_i - EPOCH) / half_life))``. Adding an event only ever
raises ``L``, ordering by ``L`` equals ordering by ``S(now)`` for any ``now``, and no
clock is read: a replay of the same events gives bit-identical scores.

>>> a = add(NEG_INF, 1.0, ts_ms=0, half_life_s=3600)
>>> round(value_at(a, now_ms=3_600_000, half_life_s=3600), 6)
0.5
"""

from __future__ import annotations

import math

NEG_INF = -math.inf
# 2019-01-01T00:00:00Z: keeps exponents small for present-day timestamps.
EPOCH_MS = 1_546_300_800_000
_LN2 = math.log(2.0)


def log_weight(weight: float, ts_ms: int, half_life_s: float) -> float:
    """Log-space contribution of one event of ``weight`` at ``ts_ms``."""
    return math.log(weight) + _LN2 * (ts_ms - EPOCH_MS) / (half_life_s * 1000.0)


def add(score: float, weight: float, ts_ms: int, half_life_s: float) -> float:
    """Score after adding one event; ``score`` is a previous result or ``NEG_INF``."""
    x = log_weight(weight, ts_ms, half_life_s)
    if score == NEG_INF:
        return x
    hi, lo = (score, x) if score >= x else (x, score)
    return hi + math.log1p(math.exp(lo - hi))


def value_at(score: float, now_ms: int, half_life_s: float) -> float:
    """The decayed sum as of event time ``now_ms`` (for display and blending)."""
    if score == NEG_INF:
        return 0.0
    return math.exp(score - _LN2 * (now_ms - EPOCH_MS) / (half_life_s * 1000.0))
