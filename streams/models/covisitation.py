"""Sequence co-visitation: items a user interacted with close together in their own history.

Each new interaction is paired with the user's previous ``window`` interactions; a pair
``d`` steps apart counts ``w_a * w_b / (d + 1) ** distance_power`` (interaction strength
``w``: a positive 1, a weaker signal such as a view or low rating less). Scores are read
normalised by popularity, ``C[i, j] / ((n_i ** norm + 1) * (n_j ** norm + 1))``, so
that busy items do not crowd out specific neighbours (measured: it is the largest single
gain over raw counts, see docs/MODELS.md).

Counts are kept in a dense matrix while the catalogue is small (fast vectorised reads)
and switch once to sparse rows past ``max_dense`` items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.models.space import grown

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CovisitParams:
    """Pairing window, distance discount, popularity normalisation, dense size limit."""

    window: int = 20
    distance_power: float = 0.5
    norm: float = 0.5
    max_dense: int = 8192


class Covisitation:
    """Symmetric, distance-weighted pair counts over item numbers."""

    def __init__(self, params: CovisitParams = CovisitParams()) -> None:
        self.params = params
        self.dense: npt.NDArray[np.float32] | None = np.zeros((0, 0), dtype=np.float32)
        self.sparse: dict[int, dict[int, float]] = defaultdict(dict)
        self.counts = np.zeros(0, dtype=np.float64)

    def add(self, item: int, weight: float, history: Sequence[tuple[int, float]]) -> None:
        """Pair ``item`` with the user's earlier items (oldest first) within the window."""
        p = self.params
        n = max([item, *(j for j, _ in history)]) + 1
        self.counts = grown(self.counts, n)
        self.counts[item] += 1.0
        recent = history[-p.window :]
        pairs: dict[int, float] = {}
        for d, (j, wj) in enumerate(reversed(recent)):
            if j != item:
                pairs[j] = pairs.get(j, 0.0) + weight * wj / (d + 1) ** p.distance_power
        if self.dense is not None and n > p.max_dense:
            self._to_sparse()
        if self.dense is not None:
            self.dense = grown(self.dense, n, axes=(0, 1))
            if pairs:
                cols = np.fromiter(pairs, dtype=np.int64, count=len(pairs))
                vals = np.fromiter(pairs.values(), dtype=np.float32, count=len(pairs))
                self.dense[item, cols] += vals
                self.dense[cols, item] += vals
            return
        row = self.sparse[item]
        for j, v in pairs.items():
            row[j] = row.get(j, 0.0) + v
            back = self.sparse[j]
            back[item] = back.get(item, 0.0) + v

    def scores(self, anchors: Sequence[int], weights: Sequence[float], n_items: int) -> Scores:
        """Normalised co-visitation score of every item for weighted anchor items."""
        out = np.zeros(n_items, dtype=np.float64)
        if not anchors:
            return out
        norm = self.params.norm
        counts = grown(self.counts, n_items)[:n_items]
        damp = counts**norm + 1.0
        w = np.asarray(weights, dtype=np.float64) / damp[np.asarray(anchors)]
        if self.dense is not None:
            m = min(n_items, self.dense.shape[0])
            if m:
                out[:m] = w @ self.dense[np.asarray(anchors), :m]
        else:
            for a, wa in zip(anchors, w, strict=True):
                for j, c in self.sparse.get(a, {}).items():
                    if j < n_items:
                        out[j] += wa * c
        result: Scores = out / damp
        return result

    def _to_sparse(self) -> None:
        dense, self.dense = self.dense, None
        if dense is None:
            return
        for i, j in zip(*np.nonzero(dense), strict=True):
            self.sparse[int(i)][int(j)] = float(dense[i, j])


def strongest(
    cov: Covisitation, anchors: Sequence[int], weights: Sequence[float], item: int
) -> int:
    """The anchor contributing most to ``item``'s co-visitation score (-1 if none does)."""
    best, best_v = -1, 0.0
    for a, w in zip(anchors, weights, strict=True):
        if cov.dense is not None:
            inside = a < cov.dense.shape[0] and item < cov.dense.shape[0]
            c = float(cov.dense[a, item]) if inside else 0.0
        else:
            c = cov.sparse.get(a, {}).get(item, 0.0)
        v = w * c / (cov.counts[a] ** cov.params.norm + 1.0)
        if v > best_v:
            best, best_v = a, v
    return best
