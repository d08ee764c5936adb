"""Symmetric item-pair counts: a dense matrix while the catalogue is small, sparse beyond.

Dense rows make scoring a vectorised sum (MovieLens: 1,682 items, 11 MB); a catalogue past
``max_dense`` items switches once to dict-of-dict rows, so memory follows the pairs seen
rather than the square of the catalogue. Both give the same ranking, ties included.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from streams.evaluation.scoring import top_items
from streams.models.space import grow


class PairCounts:
    """``C[i, j]`` for item numbers ``i, j``; only ever incremented."""

    def __init__(self, max_dense: int = 4096) -> None:
        self.max_dense = max_dense
        # float32 counts are exact below 2**24
        self.dense: npt.NDArray[np.float32] | None = np.zeros((0, 0), dtype=np.float32)
        self.sparse: dict[int, dict[int, float]] = defaultdict(dict)

    def get(self, i: int, j: int) -> float:
        """The count of pair ``(i, j)``."""
        if self.dense is not None:
            inside = i < self.dense.shape[0] and j < self.dense.shape[0]
            return float(self.dense[i, j]) if inside else 0.0
        return self.sparse.get(i, {}).get(j, 0.0)

    def add(self, i: int, others: Sequence[int], n_items: int) -> None:
        """Count one more co-occurrence of ``i`` with each of ``others`` (and back)."""
        if self.dense is not None and n_items > self.max_dense:
            self._to_sparse()
        if self.dense is not None:
            self.dense = grow(self.dense, n_items, axes=(0, 1), step=1024)
            if others:
                prev = np.asarray(others)
                self.dense[i, prev] += 1.0
                self.dense[prev, i] += 1.0
            return
        row = self.sparse[i]
        for j in others:
            row[j] = row.get(j, 0.0) + 1.0
            back = self.sparse[j]
            back[i] = back.get(i, 0.0) + 1.0

    def top(self, rows: Sequence[int], ids: list[str], k: int, exclude: set[str]) -> list[str]:
        """Best ids by ``sum C[r, j]`` over ``rows``; ties to the lower number."""
        if self.dense is not None:
            return top_items(self.dense[np.asarray(rows)].sum(axis=0), ids, k, exclude)
        scores: dict[int, float] = {}
        for r in rows:
            for j, c in self.sparse.get(r, {}).items():
                scores[j] = scores.get(j, 0.0) + c
        ranked = heapq.nsmallest(k + len(exclude), scores.items(), key=lambda jc: (-jc[1], jc[0]))
        return [ids[j] for j, _ in ranked if ids[j] not in exclude][:k]

    def _to_sparse(self) -> None:
        dense, self.dense = self.dense, None
        if dense is None:
            return
        for i, j in zip(*np.nonzero(dense), strict=True):
            self.sparse[int(i)][int(j)] = float(dense[i, j])
