"""Event-time decayed scores kept in log space.

A decayed sum ``S(now) = sum_i w_i * 2**(-(now - t_i) / half_life)`` is stored as
``L = log(sum_i w_i * 2**((t_i - EPOCH) / half_life))``. Adding an event only ever
raises ``L``, ordering by ``L`` equals ordering by ``S(now)`` for any ``now``, and no
clock is read: the same events added in the same order give bit-identical scores.
Floating-point addition is not associative, so another order can differ in the last
bit; callers that see events from several partitions keep one score per partition
(each partition's events come in its log's order) and :func:`merge` them in partition
order (see ``streams.item_state.ItemState.trend``).

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
    return merge(score, log_weight(weight, ts_ms, half_life_s))


def merge(a: float, b: float) -> float:
    """The score of the events of two scores together (``NEG_INF``: no events)."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def value_at(score: float, now_ms: int, half_life_s: float) -> float:
    """The decayed sum as of event time ``now_ms`` (for display and blending)."""
    if score == NEG_INF:
        return 0.0
    return math.exp(score - _LN2 * (now_ms - EPOCH_MS) / (half_life_s * 1000.0))
