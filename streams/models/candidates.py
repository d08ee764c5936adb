"""Candidates for one user from several sources, with the features the ranker reads.

Sources: ``covisit`` (co-visitation of the user's recent items, the also-bought /
also-viewed signal), ``ann`` (nearest items to the user vector in the HNSW index),
``similar`` (nearest items to the most recent item's vector: content-similar for new
items), ``trending`` (global) and ``category`` (trending in the user's recent categories).
Every candidate gets every feature, whichever source proposed it, so sources compete on
equal terms in the ranker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SOURCES = ("covisit", "ann", "similar", "trending", "category")
FEATURES = (
    "covisit",  # normalised co-visitation score, divided by the user's best
    "covisit_log",  # log(covisit + 0.01) / 5: separates the strong end of the scale
    "covisit_rank",  # 1 / rank among the user's co-visitation scores
    "user_sim",  # cosine of item vector and user vector
    "last_sim",  # cosine of item vector and the most recent item's vector
    "content_sim",  # cosine of content vector and the user's content profile
    "trend",  # decayed popularity, divided by the best item's
    "log_count",  # log(1 + all-time interactions) / 10
    "category_share",  # share of the user's recent history in the item's category
    "history",  # log(1 + events of the user) / 5
    *(f"src_{s}" for s in SOURCES),
)

Array = npt.NDArray[np.float64]


@dataclass(slots=True)
class Candidates:
    """Candidate item numbers, their feature matrix and which sources proposed each."""

    items: npt.NDArray[np.int64]
    features: npt.NDArray[np.float64]
    base: Array  # the hand-set score used without a ranker (and as a feature fallback)
    sources: dict[int, set[str]] = field(default_factory=dict)

    def column(self, name: str) -> Array:
        """One feature column."""
        col: Array = self.features[:, FEATURES.index(name)]
        return col


def top_indices(scores: Array, n: int, allowed: npt.NDArray[np.bool_]) -> list[int]:
    """Numbers of the ``n`` best positive, allowed scores; ties to the lower number."""
    s = np.where(allowed, scores, 0.0)
    if n <= 0 or not s.any():
        return []
    n = min(n, int((s > 0).sum()))
    part = np.argpartition(-s, n - 1)[:n]
    order = sorted(part.tolist(), key=lambda i: (-s[i], i))
    return order


def rank_reciprocal(scores: Array, items: npt.NDArray[np.int64]) -> Array:
    """``1 / rank`` of each item's score among all positive scores (0 when not positive)."""
    sel = scores[items]
    ranks = (scores[None, :] > sel[:, None]).sum(axis=1) + 1
    out: Array = np.where(sel > 0, 1.0 / ranks, 0.0)
    return out
