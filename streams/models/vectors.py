"""Item vectors learned online from co-occurrence (skip-gram with negative sampling),
blended with content vectors so that new items have a vector from their catalogue record.

Each positive pair (an item and one of the same user's recent items) pulls the two vectors
together; ``negatives`` items drawn by popularity (from a ring of recent occurrences) push
away. The published vector of an item is ``normalise(a * learned + (1 - a) * content)``
with ``a = n / (n + prior)`` for an item seen ``n`` times: an unseen item is its content.
Every change is recorded in a dirty set that :meth:`ItemVectors.drain` turns into
vector-change records for the index (and for the compacted item-vectors topic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.models.content import ContentEncoder, Vector
from streams.models.space import ItemSpace, grown

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One change of an item's vector: ``vector is None`` is a tombstone (item deleted)."""

    item_id: str
    vector: tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class VectorParams:
    """Learning rate, negatives per event, blend prior and ring size of the negative sampler."""

    dim: int = 32
    lr: float = 0.05
    negatives: int = 5
    prior: float = 10.0
    ring: int = 4096
    seed: int = 0


class ItemVectors:
    """Learned and content vectors of every known item, and their blend."""

    def __init__(self, params: VectorParams = VectorParams()) -> None:
        self.params = params
        self.space = ItemSpace()
        self.encoder = ContentEncoder(params.dim, params.seed)
        self.rng = np.random.default_rng(params.seed)
        d = params.dim
        self.learned: Matrix = np.zeros((0, d), dtype=np.float32)
        self.content: Matrix = np.zeros((0, d), dtype=np.float32)
        self.counts = np.zeros(0, dtype=np.float64)
        self.ring = np.zeros(params.ring, dtype=np.int64)
        self.ring_len = 0
        self.ring_pos = 0
        self.deleted: set[int] = set()
        self.dirty: set[int] = set()

    def add(self, item_id: str) -> int:
        """The item's number; a new item starts with a small random learned vector."""
        n = len(self.space)
        i = self.space.add(item_id)
        if i == n:
            d = self.params.dim
            self.learned = grown(self.learned, i + 1)
            self.content = grown(self.content, i + 1)
            self.counts = grown(self.counts, i + 1)
            self.learned[i] = self.rng.standard_normal(d).astype(np.float32) * np.float32(0.1)
            self.dirty.add(i)
        return i

    def set_content(self, item_id: str, meta: Mapping[str, Any]) -> None:
        """Record the content vector from a catalogue record; ``deleted`` makes a tombstone."""
        i = self.add(item_id)
        self.content[i] = self.encoder.encode(meta)
        if meta.get("deleted"):
            self.deleted.add(i)
        else:
            self.deleted.discard(i)
        self.dirty.add(i)

    def learn(self, item: int, context: Sequence[int], weights: Sequence[float]) -> None:
        """One SGNS step: ``item`` co-occurred with each of ``context`` (weighted)."""
        self.counts[item] += 1.0
        self._remember(item)
        if not context:
            return
        p = self.params
        ctx = np.asarray(context, dtype=np.int64)
        neg = self._negatives(p.negatives)
        rows = np.concatenate([ctx, neg])
        labels = np.concatenate([np.ones(len(ctx)), np.zeros(len(neg))]).astype(np.float32)
        w = np.concatenate([np.asarray(weights), np.full(len(neg), 1.0)]).astype(np.float32)
        v = self.learned[item]
        others = self.learned[rows]
        pred = 1.0 / (1.0 + np.exp(-np.clip(others @ v, -10, 10)))
        g = (labels - pred) * w * np.float32(p.lr)
        self.learned[item] = v + g @ others
        np.add.at(self.learned, rows, np.outer(g, v))
        self.dirty.add(item)
        self.dirty.update(rows.tolist())

    def vector(self, i: int) -> Vector:
        """The published (blended, unit) vector of item number ``i``."""
        row: Vector = self.vectors(np.asarray([i]))[0]
        return row

    def vectors(self, rows: npt.NDArray[np.int64]) -> Matrix:
        """Published vectors of several items at once."""
        lv = self.learned[rows]
        ln = np.linalg.norm(lv, axis=1, keepdims=True)
        a = (self.counts[rows] / (self.counts[rows] + self.params.prior)).astype(np.float32)
        mix = a[:, None] * lv / np.maximum(ln, 1e-9) + (1 - a)[:, None] * self.content[rows]
        norm = np.linalg.norm(mix, axis=1, keepdims=True)
        out: Matrix = (mix / np.maximum(norm, 1e-9)).astype(np.float32)
        return out

    def all_vectors(self) -> Matrix:
        """Published vectors of every known item, row ``i`` for item number ``i``."""
        return self.vectors(np.arange(len(self.space)))

    def drain(self) -> list[VectorRecord]:
        """Vector-change records of every item changed since the last drain, by number."""
        rows = sorted(self.dirty)
        self.dirty.clear()
        if not rows:
            return []
        vecs = self.vectors(np.asarray(rows, dtype=np.int64)).tolist()
        ids = self.space.ids
        return [
            VectorRecord(ids[i], None if i in self.deleted else tuple(v))
            for i, v in zip(rows, vecs, strict=True)
        ]

    def _remember(self, item: int) -> None:
        self.ring[self.ring_pos] = item
        self.ring_pos = (self.ring_pos + 1) % len(self.ring)
        self.ring_len = min(self.ring_len + 1, len(self.ring))

    def _negatives(self, n: int) -> npt.NDArray[np.int64]:
        if self.ring_len == 0 or n == 0:
            return np.zeros(0, dtype=np.int64)
        picks: npt.NDArray[np.int64] = self.ring[self.rng.integers(0, self.ring_len, n)]
        return picks
