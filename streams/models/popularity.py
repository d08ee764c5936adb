"""Trending (event-time decayed) and all-time popularity of every item, read per category.

Decayed scores are kept scaled by ``2 ** ((t - origin) / half_life)`` so that an event costs
one addition; the scale is folded back in before it could overflow. Ordering by the scaled
score equals ordering by the decayed score at any later time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams.models.space import grown

Scores = npt.NDArray[np.float64]


class Popularity:
    """Decayed and all-time interaction counts, and each item's category number."""

    def __init__(self, half_life_ms: float) -> None:
        self.half_life_ms = half_life_ms
        self.trend = np.zeros(0, dtype=np.float64)
        self.count = np.zeros(0, dtype=np.float64)
        self.category = np.zeros(0, dtype=np.int64)  # 0 = unknown
        self.categories: dict[str, int] = {"": 0}
        self.origin: int | None = None

    def add(self, item: int, weight: float, ts: int) -> None:
        """Count one interaction of ``weight`` at event time ``ts``."""
        if self.origin is None:
            self.origin = ts
        exponent = (ts - self.origin) / self.half_life_ms
        if exponent > 500:
            self.trend *= 2.0**-exponent
            self.origin, exponent = ts, 0.0
        self.resize(item + 1)
        self.trend[item] += weight * 2.0 ** max(exponent, -500.0)
        self.count[item] += weight

    def set_category(self, item: int, category: str | None) -> None:
        """Record the item's category (from its catalogue record)."""
        self.resize(item + 1)
        self.category[item] = self.categories.setdefault(category or "", len(self.categories))

    def resize(self, n: int) -> None:
        """Make room for item numbers below ``n``."""
        self.trend = grown(self.trend, n)
        self.count = grown(self.count, n)
        self.category = grown(self.category, n)

    def trending(self, n_items: int) -> Scores:
        """Trending scores of items ``0 .. n_items - 1`` scaled to a maximum of 1."""
        self.resize(n_items)
        t = self.trend[:n_items]
        top = float(t.max()) if n_items else 0.0
        out: Scores = t / top if top > 0 else np.zeros(n_items)
        return out
