"""Batch implicit-feedback ALS (library ``implicit``), retrained from scratch on a schedule.

The model is refitted on every interaction seen so far whenever event time crosses a
retraining boundary (multiples of ``retrain_every_ms`` since the epoch, i.e. UTC midnights
for one day), just before the first event past the boundary is learned. Between
retrainings the factors are frozen, as in a nightly batch job.

Two flavours: without fold-in a user is served from the user factors of the last
training and users unseen then get all-time popularity; with fold-in the user's vector
is recomputed at request time from their current history (the exact least-squares
solution given the frozen item factors, ``implicit``'s ``recalculate_user``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped, unused-ignore]
from scipy.sparse import csr_matrix  # type: ignore[import-untyped, unused-ignore]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, VIEW, CatalogItem, Interaction
from streams.evaluation.scoring import top_items
from streams.models.space import ItemSpace, grow

DAY_MS = 86_400_000
# Strength of one interaction as ALS input (confidence = alpha * strength); the strongest
# interaction of a (user, item) pair counts.
STRENGTH = {VIEW: 1.0, CLICK: 1.0, ADD_TO_CART: 2.0, PURCHASE: 3.0}


class BatchALS:
    """Hu/Koren/Volinsky ALS refitted every ``retrain_every_ms`` of event time."""

    def __init__(
        self,
        fold_in: bool,
        factors: int = 64,
        regularization: float = 5.0,
        alpha: float = 1.0,
        iterations: int = 15,
        retrain_every_ms: int = DAY_MS,
        seed: int = 42,
    ) -> None:
        self.fold_in = fold_in
        self.params: dict[str, Any] = {
            "factors": factors,
            "regularization": regularization,
            "alpha": alpha,
            "iterations": iterations,
        }
        self.retrain_every_ms = retrain_every_ms
        self.seed = seed
        self.users = ItemSpace()
        self.items = ItemSpace()
        self.history: list[dict[int, float]] = []
        self.counts = np.zeros(0, dtype=np.float64)
        self.next_train: int | None = None
        self.trainings = 0
        self.train_s = 0.0
        self._item_factors: np.ndarray[Any, Any] | None = None
        self._user_factors: np.ndarray[Any, Any] | None = None
        self._model: Any = None
        self._trained_users = 0

    def learn(self, event: Interaction) -> None:
        """Record the interaction; refit first when it is past a retraining boundary."""
        if self.next_train is None:
            self.next_train = self._boundary_after(event.ts)
        elif event.ts >= self.next_train:
            self._train()
            self.next_train = self._boundary_after(event.ts)
        i = self.items.add(event.item_id)
        self.counts = grow(self.counts, i + 1)
        self.counts[i] += 1.0  # the popularity fallback counts every interaction
        strength = STRENGTH.get(event.type, 0.0)
        if strength <= 0:
            return
        u = self.users.add(event.user_id)
        if u == len(self.history):
            self.history.append({})
        row = self.history[u]
        row[i] = max(row.get(i, 0.0), strength)

    def learn_catalog(self, item: CatalogItem) -> None:
        """Catalogue metadata plays no part."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """Top items by ALS score; all-time popularity when the user has no vector."""
        vec = self._user_vector(user_id)
        if vec is None or self._item_factors is None:
            return top_items(self.counts, self.items.ids, k, exclude)
        scores = self._item_factors @ vec
        trained = self.items.ids[: len(scores)]
        return top_items(scores, trained, k, exclude, positive_only=False)

    def _boundary_after(self, ts: int) -> int:
        return (ts // self.retrain_every_ms + 1) * self.retrain_every_ms

    def _user_vector(self, user_id: str) -> np.ndarray[Any, Any] | None:
        u = self.users.pos.get(user_id)
        if u is None or self._model is None:
            return None
        if not self.fold_in:
            if u >= self._trained_users or self._user_factors is None:
                return None
            row_vec: np.ndarray[Any, Any] = self._user_factors[u]
            return row_vec
        n_items = self._model.item_factors.shape[0]
        known = sorted((i, w) for i, w in self.history[u].items() if i < n_items)
        if not known:
            return None
        cols = np.fromiter((i for i, _ in known), dtype=np.int32, count=len(known))
        vals = np.fromiter((w for _, w in known), dtype=np.float32, count=len(known))
        row = csr_matrix((vals, cols, np.array([0, len(known)])), shape=(1, n_items))
        vec: np.ndarray[Any, Any] = self._model.recalculate_user(0, row)
        return vec

    def _matrix(self) -> Any:
        indptr = [0]
        cols: list[int] = []
        vals: list[float] = []
        for row in self.history:
            for i in sorted(row):
                cols.append(i)
                vals.append(row[i])
            indptr.append(len(cols))
        shape = (len(self.history), len(self.items))
        return csr_matrix(
            (np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int32), indptr),
            shape=shape,
        )

    def _train(self) -> None:
        if not self.history:
            return
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**self.params, random_state=self.seed, num_threads=1)
            model.fit(self._matrix(), show_progress=False)
            model.YtY  # noqa: B018 - cache the Gram matrix under the one-thread limit
        self._model = model
        self._item_factors = np.asarray(model.item_factors)
        self._user_factors = np.asarray(model.user_factors)
        self._trained_users = self._user_factors.shape[0]
        self.trainings += 1
        self.train_s += time.perf_counter() - t0
