"""Statistics of an A/B test on proportions: Wilson intervals and two significance tests.

The report is recomputed every few seconds and people look at it whenever they like.
A fixed-horizon test read that way ("peeking") rejects a true null far more often than
its nominal alpha. The default test is therefore the mixture sequential probability
ratio test (mSPRT, Johari et al. 2017, "Peeking at A/B tests"): its p-value stays valid
at any time one chooses to stop. The classic pooled two-proportion z-test is kept for
a test whose sample size was fixed in advance.

>>> lo, hi = wilson(50, 100)
>>> round(lo, 4), round(hi, 4)
(0.4038, 0.5962)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Z95 = 1.959963984540054
# Prior spread of the true CTR difference the mSPRT mixes over: effects of a few
# points of CTR are what a ranking change can plausibly buy.
MSPRT_TAU = 0.05


def _within(successes: int, trials: int) -> int:
    """Successes kept within ``[0, trials]``: a batch redone after a crash can count a
    click twice, and a proportion above 1 would fail the square roots below."""
    return min(max(successes, 0), trials)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; ``(0, 1)`` without trials. It always holds
    the observed proportion: exactly 0 at no successes, exactly 1 at all."""
    if trials <= 0:
        return (0.0, 1.0)
    successes = _within(successes, trials)
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes == trials else min(1.0, max(p, centre + half))
    return (low, high)


def z_test(c1: int, n1: int, c2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test; 1 when undefined."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    c1, c2 = _within(c1, n1), _within(c2, n2)
    pooled = (c1 + c2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (c2 / n2 - c1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def msprt(c1: int, n1: int, c2: int, n2: int, tau: float = MSPRT_TAU) -> float:
    """Always-valid p-value of a difference in proportions (Gaussian mixture SPRT).

    The difference of the two CTRs is roughly normal with variance ``s2``; mixing the
    alternative over ``N(0, tau^2)`` gives the likelihood ratio
    ``sqrt(s2 / (s2 + tau^2)) * exp(tau^2 d^2 / (2 s2 (s2 + tau^2)))``, and ``1 / ratio``
    (capped at 1) is a p-value that is valid whenever it is read.
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    c1, c2 = _within(c1, n1), _within(c2, n2)
    p1, p2 = c1 / n1, c2 / n2
    # Continuity: a 0% or 100% arm would claim zero variance; use the pooled rate instead.
    pooled = (c1 + c2) / (n1 + n2)
    v1 = p1 * (1 - p1) if 0 < p1 < 1 else pooled * (1 - pooled)
    v2 = p2 * (1 - p2) if 0 < p2 < 1 else pooled * (1 - pooled)
    s2 = v1 / n1 + v2 / n2
    if s2 == 0:
        return 1.0
    t2 = tau * tau
    log_ratio = 0.5 * math.log(s2 / (s2 + t2)) + t2 * (p2 - p1) ** 2 / (2 * s2 * (s2 + t2))
    return 1.0 if log_ratio <= 0 else math.exp(-log_ratio)


METHODS = {
    "msprt": "msprt: always-valid mixture SPRT, leader vs runner-up, Bonferroni over pairs",
    "z": "z: pooled two-proportion z-test, leader vs runner-up, Bonferroni over pairs",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of comparing the variants' click-through rates."""

    method: str
    p_value: float
    significant: bool
    leader: str | None


def compare(
    counts: Mapping[str, tuple[int, int]], method: str = "msprt", alpha: float = 0.05
) -> Verdict:
    """Compare the best variant by CTR with the runner-up; ``counts`` maps variant -> (clicks, n).

    With k variants the leader is picked after looking, so the p-value is multiplied by
    the k(k-1)/2 possible pairs (Bonferroni), which keeps the error rate honest. A
    variant without impressions has no rate and takes no part.
    """
    ranked = sorted(
        ((_within(c, n) / n, v) for v, (c, n) in counts.items() if n > 0),
        key=lambda t: (-t[0], t[1]),
    )
    if len(ranked) < 2:
        return Verdict(METHODS[method], 1.0, False, None)
    (_, best), (_, second) = ranked[0], ranked[1]
    n2, n1 = counts[best][1], counts[second][1]
    c2, c1 = _within(counts[best][0], n2), _within(counts[second][0], n1)
    raw = msprt(c1, n1, c2, n2) if method == "msprt" else z_test(c1, n1, c2, n2)
    pairs = len(ranked) * (len(ranked) - 1) // 2
    p = min(1.0, raw * pairs)
    significant = p < alpha and c2 / n2 > c1 / n1
    return Verdict(METHODS[method], p, significant, best if significant else None)
