"""Online ranker: a River logistic regression of P(positive | user, item, source, context).

It learns from what was served: when a user goes on to like an item, the candidates that
were on offer at that moment give one positive (the liked item, with the features it had
then) and sampled negatives (items that were in the served list, i.e. exposed and passed
over, plus a few unexposed candidates). Scoring a candidate set uses the model's own
weights as one matrix product, identical in order to ``predict_proba_one`` item by item
(the logistic link is monotone) and far cheaper. The state pickles (River models do), so
a worker can checkpoint it with its table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from river import linear_model, optim  # type: ignore[import-untyped, unused-ignore]

from streams.models.candidates import FEATURES

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RankerParams:
    """SGD step, L2 penalty, negatives per positive (exposed and unexposed), seed."""

    lr: float = 0.05
    l2: float = 0.0
    exposed_negatives: int = 6
    other_negatives: int = 4
    seed: int = 0


class Ranker:
    """Logistic regression over the candidate features, trained one exposure at a time."""

    def __init__(self, params: RankerParams = RankerParams()) -> None:
        self.params = params
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(params.lr), l2=params.l2)
        self.rng = np.random.default_rng(params.seed)
        self.learned = 0

    def learn(self, features: Array, positive: int, exposed: Sequence[int]) -> None:
        """Row ``positive`` of ``features`` was liked; ``exposed`` rows were served."""
        p = self.params
        passed = [r for r in exposed if r != positive]
        others = [r for r in range(len(features)) if r != positive and r not in set(exposed)]
        negatives = self._sample(passed, p.exposed_negatives) + self._sample(
            others, p.other_negatives
        )
        # Pairwise (RankNet-style) updates: the liked item against each passed-over one,
        # in both orders so that the intercept stays neutral.
        pos = features[positive]
        for r in negatives:
            self.model.learn_one(_row(pos - features[r]), True)
            self.model.learn_one(_row(features[r] - pos), False)
        self.learned += 1

    def scores(self, features: Array) -> Array:
        """Log-odds of every row (same order as ``predict_proba_one``)."""
        w = np.asarray([self.model.weights.get(f, 0.0) for f in FEATURES], dtype=np.float64)
        out: Array = features @ w + float(self.model.intercept)
        return out

    def proba(self, features: Array) -> Array:
        """P(positive) of every row."""
        out: Array = 1.0 / (1.0 + np.exp(-self.scores(features)))
        return out

    def _sample(self, rows: list[int], n: int) -> list[int]:
        if len(rows) <= n:
            return rows
        picks = self.rng.choice(len(rows), size=n, replace=False)
        return [rows[i] for i in sorted(picks.tolist())]


def _row(values: Array) -> dict[str, float]:
    return {f: float(v) for f, v in zip(FEATURES, values, strict=True) if not math.isnan(v)}
