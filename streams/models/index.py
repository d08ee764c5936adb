"""An hnswlib item index kept current from vector-change records, cheaply.

Updating one element of an HNSW graph costs far more than a query (about 780 updates/s
against 38,000 queries/s for 32-d vectors on this machine), so changes are coalesced:
:meth:`VectorIndex.upsert` and :meth:`delete` only record the latest vector (or tombstone)
per item in a dirty set, and :meth:`flush` applies it when the set reaches ``flush_size``
or when ``flush_every_ms`` of event time passed since the last flush. An item whose vector
moved less than ``min_change`` (cosine distance) from the vector the graph holds is not
rewritten in the graph, but its latest vector is what exact scans and the scores of ANN
results use: ANN only proposes candidates, and a score never depends on which flush
brought which vector (a replay of the compacted topic scores as the live run did).

Discipline: one lock guards the graph; queries and writes both take it, so nothing is
written while a query runs. A flush holds it for at most ``chunk`` updates at a time, so
queries interleave with a long flush. A flush whose dirty set is a large part of the index
(updates would cost more than building anew, inserts being ~15x cheaper) builds a new graph
aside, without the lock, and swaps it in: readers are never stalled by it. So does a flush
that would leave more deleted elements in the graph than live ones (``mark_deleted`` keeps
them, and queries still walk them); a rebuild hands out labels anew, so the graph, its
capacity and the label maps follow the live items, not every id ever seen. Growth doubles
the capacity (``resize_index``), so it happens O(log n) times. Writes (``upsert``,
``delete``, ``flush``) come from one thread.

A replica catches up by :meth:`apply` of the records a compacted item-vectors topic holds
(``item_id -> vector | tombstone``, last one wins) followed by a flush.

Recall is kept, not assumed. How wide a query must search (``ef``) for a given recall grows
with the graph and with how clustered the vectors are, so no constant suits both a
2,000-item shop and 10 M items. Whenever the graph has doubled or halved since it was last
measured, or as many elements were rewritten as it then held,
:meth:`VectorIndex.calibrate` queries a seeded sample of its own items the way a
similar-items list does, compares with brute force, and keeps the smallest ``ef`` of the
ladder ``ef, 2 ef, 4 ef, ... ef_max`` that reaches ``target_recall``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import hnswlib  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt

from streams.models.vectors import VectorRecord

Matrix = npt.NDArray[np.float32]
UPDATE_COST = 15.0  # one in-place update costs about this many fresh inserts
BLOCK = 65_536  # indexed vectors per block of a brute-force pass (200 queries: ~100 MB)
TIE = 1e-5  # scores this close to the exact k-th count as reaching it (float32 rounding)


@dataclass(frozen=True, slots=True)
class IndexParams:
    """HNSW graph parameters and the coalescing policy."""

    dim: int = 32
    m: int = 16
    ef_construction: int = 100
    ef: int = 64  # the narrowest query; calibration may widen it
    flush_size: int = 256
    flush_every_ms: int = 3_600_000
    min_change: float = 0.02
    chunk: int = 64
    initial_capacity: int = 1024
    seed: int = 0
    # Calibration (see :meth:`VectorIndex.calibrate`); after the older fields, so that
    # the positional pickles of a slotted dataclass keep their meaning.
    target_recall: float = 0.95  # recall calibration aims for, on a sample of the items
    calibrate_k: int = 10  # neighbours per query besides the item itself, as the reader asks
    ef_max: int = 1024
    calibrate_sample: int = 200
    calibrate_from: int = 2_000  # smaller graphs are not measured: they keep ``ef``


@dataclass(frozen=True, slots=True)
class Sample:
    """Recall queries: vectors, their own labels (``None``: not indexed items), and the
    exact ``k``-th score of each."""

    queries: Matrix
    own: npt.NDArray[np.int64] | None
    kth: npt.NDArray[np.float32]
    k: int


class VectorIndex:
    """Inner-product HNSW index over unit item vectors, labelled by item id."""

    def __init__(self, params: IndexParams = IndexParams()) -> None:
        self.params = params
        self.lock = threading.Lock()
        self.labels: dict[str, int] = {}
        self.ids: list[str] = []
        self.indexed: dict[int, Matrix] = {}  # label -> latest vector (live items only)
        self.drifted: dict[int, Matrix] = {}  # label -> the graph's vector, where not latest
        self.pending: dict[int, Matrix | None] = {}  # label -> latest vector or tombstone
        self.last_flush_ts: int | None = None
        self.updates = 0
        self.rebuilds = 0
        self.ef = params.ef  # the query breadth in use (see :meth:`calibrate`)
        self.recall: float | None = None  # recall the last calibration measured
        self.calibrated_at = 0  # live items at the last calibration
        self.changed_since = 0  # elements written or deleted since the last calibration
        self.graph = self._new_graph(params.initial_capacity)
        self._scan: tuple[npt.NDArray[np.int64], Matrix] | None = None  # cache of scan()

    def __len__(self) -> int:
        return len(self.indexed)

    def __contains__(self, item_id: object) -> bool:
        label = self.labels.get(item_id) if isinstance(item_id, str) else None
        return label is not None and label in self.indexed

    # --- writes (coalesced) -----------------------------------------------------------

    def upsert(self, item_id: str, vector: Matrix) -> None:
        """Record the item's latest vector; it reaches the graph at the next flush."""
        self.pending[self._label(item_id)] = np.asarray(vector, dtype=np.float32)

    def delete(self, item_id: str) -> None:
        """Record a tombstone; the item leaves query results at the next flush."""
        if item_id in self.labels:
            self.pending[self.labels[item_id]] = None

    def apply(self, records: Iterable[VectorRecord]) -> None:
        """Record a sequence of vector-change records in order (the last per item wins)."""
        for r in records:
            if r.vector is None:
                self.delete(r.item_id)
            else:
                self.upsert(r.item_id, np.asarray(r.vector, dtype=np.float32))

    def due(self, now_ts: int) -> bool:
        """True when the dirty set is full or the event-time timer has run out."""
        if not self.pending:
            return False
        if len(self.pending) >= self.params.flush_size or self.last_flush_ts is None:
            return True
        return now_ts - self.last_flush_ts >= self.params.flush_every_ms

    def maybe_flush(self, now_ts: int) -> int:
        """Flush if :meth:`due`; returns how many elements were written."""
        return self.flush(now_ts) if self.due(now_ts) else 0

    def flush(self, now_ts: int | None = None) -> int:
        """Apply the dirty set; returns how many graph elements were written.

        Every latest vector reaches :attr:`indexed`; the graph takes only those that moved.
        """
        if now_ts is not None:
            self.last_flush_ts = now_ts
        pending, self.pending = self.pending, {}
        deletes = [lb for lb, v in pending.items() if v is None and lb in self.indexed]
        writes, nudged = self._split(pending)
        if nudged:
            self._scan = None
            with self.lock:
                for lb, v in nudged.items():
                    self.drifted.setdefault(lb, self.indexed[lb])
                    self.indexed[lb] = v
        if not deletes and not writes:
            return 0
        self._scan = None
        fresh = sum(1 for lb in writes if lb not in self.indexed)
        updates = len(writes) - fresh
        live_after = len(self.indexed) + fresh - len(deletes)
        dead_after = self.graph.get_current_count() - len(self.indexed) + len(deletes)
        if updates * UPDATE_COST > live_after or dead_after > live_after:
            self._rebuild(writes, deletes)
        else:
            self._write_in_place(writes, deletes)
        self.changed_since += len(writes) + len(deletes)
        if self._calibration_due():
            self.calibrate()
        return len(writes) + len(deletes)

    def _calibration_due(self) -> bool:
        """From ``calibrate_from`` items on: when the graph has doubled or halved since the
        last calibration, or as many elements were rewritten as it then held."""
        n, last = len(self.indexed), self.calibrated_at
        if n < self.params.calibrate_from:
            return False
        return n >= 2 * last or 2 * n <= last or self.changed_since >= last

    def calibrate(self) -> float:
        """Set :attr:`ef` to the smallest ladder step whose recall reaches the target.

        Measured the way similar-items lists ask: each of ``calibrate_sample`` indexed
        items (seeded) queries ``calibrate_k + 1`` neighbours and its own entry is dropped;
        the truth is brute force over every indexed vector. A result counts as a hit when
        it scores at least the exact ``calibrate_k``-th score among the other items, so
        items with equal vectors (common among catalogue records) are interchangeable
        rather than misses. Returns the recall at the chosen ``ef`` (below the target only
        at ``ef_max``).
        """
        p = self.params
        self.calibrated_at, self.changed_since = len(self.indexed), 0
        if len(self.indexed) <= p.calibrate_k + 1:
            self.ef, self.recall = p.ef, 1.0
            return 1.0
        sample = self.calibration_sample()
        ef = p.ef
        while True:
            recall = self.sample_recall(sample, ef)
            if recall >= p.target_recall or ef >= p.ef_max:
                break
            ef = min(2 * ef, p.ef_max)
        self.ef, self.recall = ef, recall
        return recall

    def calibration_sample(self) -> Sample:
        """The seeded sample :meth:`calibrate` measures: queries, their labels, and the
        exact ``calibrate_k``-th score among the other items (the query item scores 1,
        so it is the exact ``calibrate_k + 1``-th overall)."""
        p = self.params
        # By sorted label, not insertion order: a rebuild reorders the dict.
        labels = np.sort(np.fromiter(self.indexed, dtype=np.int64, count=len(self.indexed)))
        rng = np.random.default_rng(p.seed)
        own = labels[rng.choice(len(labels), min(p.calibrate_sample, len(labels)), replace=False)]
        queries = np.stack([self.indexed[int(lb)] for lb in own])
        return Sample(queries, own, self.exact_kth(queries, p.calibrate_k + 1), p.calibrate_k)

    def sample_recall(self, sample: Sample, ef: int) -> float:
        """Share of the ``k`` results per query that score at least that query's ``kth``.

        A query that is an indexed item (``sample.own``) asks for one more result and its
        own entry is dropped, as a similar-items list does.
        """
        hits = 0
        for i, (q, floor) in enumerate(zip(sample.queries, sample.kth, strict=True)):
            own = None if sample.own is None else sample.own[i]
            labels, scores, _ = self._knn(q, sample.k + (own is not None), ef)
            hit = scores >= floor - TIE
            if own is not None:
                hit &= labels != own
            hits += min(sample.k, int(np.count_nonzero(hit)))
        return hits / (sample.k * len(sample.queries))

    # --- reads --------------------------------------------------------------------------

    def query(self, vector: Matrix, k: int) -> list[tuple[str, float]]:
        """The ``k`` indexed items with the largest inner product, best first."""
        if not self.indexed:
            return []
        labels, scores, ids = self._knn(np.asarray(vector, dtype=np.float32), k, self.ef)
        return [(ids[int(lb)], float(s)) for lb, s in zip(labels, scores, strict=True)]

    def _knn(
        self, query: Matrix, k: int, ef: int
    ) -> tuple[Any, npt.NDArray[np.float64], list[str]]:
        """Labels and inner products of the graph's ``k`` nearest at breadth ``ef``, best
        first, and the ids the labels map to, all under the lock (a rebuild relabels).

        An item the graph holds with an older vector (:attr:`drifted`) is scored with its
        latest one, and the results sorted again.
        """
        with self.lock:
            n = len(self.indexed)
            k = min(k, n)
            self.graph.set_ef(max(ef, k))
            try:
                labels, dist = self.graph.knn_query(query, k=k)
            except RuntimeError:  # too few reachable live elements at this ef: search wider
                self.graph.set_ef(max(n, k))
                labels, dist = self.graph.knn_query(query, k=k)
            # hnswlib's "ip" distance is 1 - inner product
            found, scores = labels[0], 1.0 - dist[0].astype(np.float64)
            held = self.drifted
            drifted = [j for j, lb in enumerate(found.tolist()) if lb in held] if held else []
            if drifted:
                for j in drifted:
                    scores[j] = self.indexed[int(found[j])] @ query
                order = np.argsort(-scores, kind="stable")
                found, scores = found[order], scores[order]
            ids = self.ids
        return found, scores, ids

    def exact_kth(self, queries: Matrix, k: int) -> npt.NDArray[np.float32]:
        """The exact ``k``-th best inner product of each query over every indexed vector.

        Brute force in blocks of ``BLOCK`` indexed vectors with a running top ``k`` per
        query; only the scores above a query's running ``k``-th are merged, so memory stays
        near a block's scores and the work near one matrix product. ``-inf`` where fewer
        than ``k`` items are indexed.
        """
        queries = np.asarray(queries, dtype=np.float32)
        best = np.full((len(queries), k), -np.inf, dtype=np.float32)
        kth = best[:, 0].copy()
        vectors = list(self.indexed.values())
        for start in range(0, len(vectors), BLOCK):
            scores = queries @ np.stack(vectors[start : start + BLOCK]).T
            above = scores > kth[:, None]
            for i in np.flatnonzero(above.any(axis=1)):
                merged = np.concatenate([best[i], scores[i][above[i]]])
                best[i] = np.partition(merged, len(merged) - k)[-k:]
                kth[i] = best[i].min()
        return kth

    def scan(self, vector: Matrix) -> tuple[npt.NDArray[np.int64], Matrix]:
        """Labels and inner products of every indexed item, by brute force.

        Brute force costs O(n) per query against HNSW's O(log n), but it is exact and
        does not depend on the order in which the graph was built.
        """
        labels, mat = self.matrix()
        return labels, mat @ np.asarray(vector, dtype=np.float32)

    def matrix(self) -> tuple[npt.NDArray[np.int64], Matrix]:
        """Labels and vectors of every indexed item, one row each.

        Kept between calls; rebuilt after a flush changed the index.
        """
        if self._scan is None:
            labels = np.fromiter(self.indexed, dtype=np.int64, count=len(self.indexed))
            mat = (
                np.stack([self.indexed[int(lb)] for lb in labels])
                if len(labels)
                else np.zeros((0, self.params.dim), dtype=np.float32)
            )
            self._scan = (labels, mat)
        return self._scan

    # --- internals ----------------------------------------------------------------------

    def _label(self, item_id: str) -> int:
        label = self.labels.get(item_id)
        if label is None:
            label = self.labels[item_id] = len(self.ids)
            self.ids.append(item_id)
        return label

    def _split(
        self, pending: dict[int, Matrix | None]
    ) -> tuple[dict[int, Matrix], dict[int, Matrix]]:
        """The vectors the graph must take (new items, or moved at least ``min_change`` from
        the vector the graph holds) and the others, which only :attr:`indexed` takes.

        Measured against the graph's vector, not the last one seen, so that small moves
        adding up still reach the graph.
        """
        writes: dict[int, Matrix] = {}
        nudged: dict[int, Matrix] = {}
        for lb, v in pending.items():
            if v is None:
                continue
            held = self.drifted.get(lb, self.indexed.get(lb))
            moved = held is None or 1.0 - float(held @ v) >= self.params.min_change
            (writes if moved else nudged)[lb] = v
        return writes, nudged

    def _new_graph(self, capacity: int) -> Any:
        p = self.params
        graph = hnswlib.Index(space="ip", dim=p.dim)
        graph.init_index(
            max_elements=capacity, ef_construction=p.ef_construction, M=p.m, random_seed=p.seed
        )
        graph.set_num_threads(1)  # deterministic graph; workers scale by processes
        graph.set_ef(p.ef)
        return graph

    def _write_in_place(self, writes: dict[int, Matrix], deletes: list[int]) -> None:
        p = self.params
        with self.lock:
            for lb in deletes:
                self.graph.mark_deleted(lb)
                del self.indexed[lb]
                self.drifted.pop(lb, None)
            need = len(self.ids)
            if need > self.graph.get_max_elements():
                self.graph.resize_index(max(need, 2 * self.graph.get_max_elements()))
        labels = sorted(writes)
        for start in range(0, len(labels), p.chunk):
            part = labels[start : start + p.chunk]
            mat = np.stack([writes[lb] for lb in part])
            with self.lock:  # released between chunks so that queries interleave
                self.graph.add_items(mat, np.asarray(part, dtype=np.int64))
                for lb in part:
                    self.indexed[lb] = writes[lb]
                    self.drifted.pop(lb, None)
            self.updates += len(part)

    def _rebuild(self, writes: dict[int, Matrix], deletes: list[int]) -> None:
        """Build a graph of the live items aside and swap it in.

        Labels are handed out anew, ``0 .. n-1`` in the order of the old ones: deleted
        items leave the label maps, and the capacity is twice the live items.
        """
        gone = set(deletes)
        live = {lb: v for lb, v in self.indexed.items() if lb not in gone}
        live.update(writes)
        old = sorted(live)
        ids = [self.ids[lb] for lb in old]
        graph = self._new_graph(max(self.params.initial_capacity, 2 * len(ids)))
        if old:
            graph.add_items(np.stack([live[lb] for lb in old]), np.arange(len(old)))
        indexed = {new: live[lb] for new, lb in enumerate(old)}
        labels = {item: new for new, item in enumerate(ids)}
        with self.lock:  # the swap is the only moment readers wait for
            self.graph, self.indexed, self.ids, self.labels = graph, indexed, ids, labels
            self.drifted = {}
        self.rebuilds += 1
        self.updates += len(writes)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        state["_scan"] = None  # a cache, rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_scan", None)
        self.__dict__.setdefault("ef", self.params.ef)
        self.__dict__.setdefault("recall", None)
        self.__dict__.setdefault("calibrated_at", 0)
        self.__dict__.setdefault("changed_since", 0)
        self.__dict__.setdefault("drifted", {})
        self.lock = threading.Lock()


def ann_recall(index: VectorIndex, queries: Matrix, k: int = 10) -> float:
    """Recall@``k`` of ANN queries at the index's :attr:`~VectorIndex.ef` vs brute force.

    A result is a hit when it scores at least the exact ``k``-th score: among items with
    equal vectors, exact search has no single answer, so any of them counts.
    """
    if len(index) == 0 or len(queries) == 0:
        return 1.0
    k = min(k, len(index))
    queries = np.asarray(queries, dtype=np.float32)
    return index.sample_recall(Sample(queries, None, index.exact_kth(queries, k), k), index.ef)
