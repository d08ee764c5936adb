"""A worker's replica of every item vector, and the "similar items" lists it answers.

The compacted item-vectors topic holds the latest vector of every item (key = item id,
value = ``dim`` float32 little-endian, null or empty value = tombstone). Every worker replays all
of it into a :class:`VectorReplica`; the HNSW graph is never checkpointed, a replay of the
compacted topic rebuilds it. This module is the pure part: the record encoding, the
content record a catalogue record yields, and the replica with its coalesced flush and the
set of lists a flush makes stale. No Kafka, no Redis.

Not thread-safe: one thread owns a replica (the worker runs every call on a single
executor thread, so the event loop is never blocked by a flush or a rebuild).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.models.content import ContentEncoder
from streams.models.index import IndexParams, Matrix, VectorIndex
from streams.models.vectors import VectorParams, VectorRecord

DTYPE = np.dtype("<f4")  # little-endian float32, whatever the host
VECTORS = VectorParams()  # the shared dimension and seed of every content vector
# Flush on 256 pending changes or one second of the caller's clock (the worker: wall clock).
INDEX = IndexParams(flush_every_ms=1_000)
TRACK_WIDTH = 4  # beyond exact scans, a change is tested against 4 x list_size ANN neighbours
SCORE_BLOCK = 1 << 22  # scores per block of the exact stale-list test (float32: 16 MiB)


def encode_value(vector: tuple[float, ...] | None) -> bytes | None:
    """The topic value of a vector: ``dim`` float32 little-endian; ``None`` (a Kafka
    tombstone, which compaction turns into the key's removal) for a deleted item."""
    if vector is None:
        return None
    return np.asarray(vector, dtype=DTYPE).tobytes()


def decode_value(item_id: str, raw: bytes | None, dim: int) -> VectorRecord:
    """The record of one topic message; ``ValueError`` when the value is not ``dim`` floats."""
    if not raw:
        return VectorRecord(item_id, None)
    if len(raw) != dim * DTYPE.itemsize:
        raise ValueError(f"item {item_id!r}: {len(raw)} bytes, expected {dim * DTYPE.itemsize}")
    vec = np.frombuffer(raw, dtype=DTYPE)
    if not np.all(np.isfinite(vec)):
        raise ValueError(f"item {item_id!r}: vector is not finite")
    return VectorRecord(item_id, tuple(vec.tolist()))


def content_encoder(params: VectorParams = VECTORS) -> ContentEncoder:
    """The encoder every writer uses: same dimension and seed as :class:`ItemVectors`."""
    return ContentEncoder(params.dim, params.seed)


def content_record(encoder: ContentEncoder, item_id: str, meta: Mapping[str, Any]) -> VectorRecord:
    """The vector record of a catalogue record: its content vector, or a tombstone.

    A deleted item leaves the index; so does a record with no usable field (its content
    vector is zero, which would sit at inner product 0 from everything and mean nothing).
    """
    if meta.get("deleted"):
        return VectorRecord(item_id, None)
    vec = encoder.encode(meta)
    if not np.any(vec):
        return VectorRecord(item_id, None)
    return VectorRecord(item_id, tuple(vec.tolist()))


def best_scores(vectors: Matrix, mat: Matrix) -> npt.NDArray[np.float64]:
    """Per row of ``mat``, its best inner product with any of ``vectors``, rounded to 4
    decimals as lists publish scores.

    In blocks of about ``SCORE_BLOCK`` scores, keeping a running best: a poll may change
    5,000 items, and their vectors before and after against 20,000 items would be 0.8 GB of
    float32 scores at once. Rounding is monotonic, so the rounded best equals the best of
    the rounded scores.
    """
    best = np.full(len(mat), -np.inf, dtype=np.float32)
    rows = max(1, SCORE_BLOCK // max(1, len(mat)))
    for start in range(0, len(vectors), rows):
        np.maximum(best, (vectors[start : start + rows] @ mat.T).max(axis=0), out=best)
    return best.astype(np.float64).round(4)


Neighbours = list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class ReplicaParams:
    """Index parameters, the length of a published list, and where ANN takes over.

    Up to ``exact_up_to`` live items, lists come from a brute-force scan: exact, and
    independent of the order the graph was built in, so a replay publishes the very same
    lists (see :meth:`VectorReplica.neighbours`). Beyond it they come from the HNSW graph.

    ``index.flush_every_ms`` is read against the clock the caller passes to :meth:`step`;
    the worker passes wall-clock milliseconds, so a lone new item is indexed within that
    time rather than waiting for the next 255 changes.
    """

    index: IndexParams = INDEX
    list_size: int = 20
    exact_up_to: int = 20_000


class VectorReplica:
    """A :class:`VectorIndex` fed from vector records, tracking which lists went stale."""

    def __init__(self, params: ReplicaParams = ReplicaParams()) -> None:
        self.params = params
        self.index = VectorIndex(params.index)
        self.newest_ts = 0  # event time of the newest record applied (epoch ms)
        # By label: the last score of the item's list when :meth:`lists` computed it;
        # NaN for a list never computed here.
        self.floor: npt.NDArray[np.float64] = np.full(0, np.nan)

    def __len__(self) -> int:
        return len(self.index)

    def step(
        self, records: Iterable[tuple[VectorRecord, int]], now_ms: int, track: bool = True
    ) -> set[str]:
        """Record ``(record, ts)`` pairs in log order, flush if due; returns stale lists.

        A list is stale when its item changed, or when a changed item enters it (its new
        vector scores at least the list's floor, the last score it was computed with) or
        may leave it (its old vector did). Only lists computed by :meth:`lists` have a
        floor, so only those are tracked; an item whose list was never computed here is
        not reported. Up to ``exact_up_to`` items the test covers every list, so the
        published lists always equal a fresh computation over the current vectors; beyond
        it, only the changed item's ``TRACK_WIDTH * list_size`` ANN neighbours are
        tested. ``track=False`` (catching up from the start of the topic) skips the test:
        every list is published afterwards.
        """
        for record, ts in records:
            self.index.apply((record,))
            self.newest_ts = max(self.newest_ts, ts)
        if not self.index.due(now_ms):
            return set()
        changed = [self.index.ids[lb] for lb in self.index.pending]
        before = [v for v in map(self.vector, changed) if v is not None] if track else []
        self.flush(now_ms)
        stale = set(changed)
        if track:
            after = [v for v in map(self.vector, changed) if v is not None]
            stale.update(self._entered(before + after))
        return stale

    def _entered(self, vectors: list[Matrix]) -> set[str]:
        """Items whose computed list one of ``vectors`` scores into (at or above its floor)."""
        if not vectors or len(self.index) == 0:
            return set()
        if len(self.index) > self.params.exact_up_to:
            width = TRACK_WIDTH * self.params.list_size
            pairs = [(lb, s) for v in vectors for lb, s in self._ann_labels(v, width)]
            labels = np.asarray([lb for lb, _ in pairs], dtype=np.int64)
            scores = np.asarray([s for _, s in pairs], dtype=np.float64).round(4)
        else:
            labels, mat = self.index.matrix()
            scores = best_scores(np.stack(vectors), mat)
        floors = self._floors(labels)
        hit = labels[scores >= floors]  # NaN floors (never computed) compare False
        return {self.index.ids[int(lb)] for lb in hit}

    def _ann_labels(self, vector: Matrix, k: int) -> list[tuple[int, float]]:
        return [(self.index.labels[i], s) for i, s in self.index.query(vector, k)]

    def _floors(self, labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        out = np.full(len(labels), np.nan)
        known = labels < len(self.floor)
        out[known] = self.floor[labels[known]]
        return out

    def _set_floor(self, item_id: str, found: Neighbours, k: int) -> None:
        label = self.index.labels[item_id]
        if label >= len(self.floor):
            grown = np.full(max(2 * len(self.floor), label + 1), np.nan)
            grown[: len(self.floor)] = self.floor
            self.floor = grown
        # A short list takes any newcomer: its floor is -inf.
        self.floor[label] = found[-1][1] if len(found) >= k else -np.inf

    def flush(self, now_ms: int) -> int:
        """Write every pending change now (end of a catch-up); returns elements written."""
        ids, rebuilds = self.index.ids, self.index.rebuilds
        written = self.index.flush(now_ms)
        if self.index.rebuilds != rebuilds:
            self._relabel(ids)
        return written

    def _relabel(self, old_ids: list[str]) -> None:
        """Carry the floors over to the labels a rebuild handed out; deleted items' go."""
        floor = np.full(len(self.index.ids), np.nan)
        for old in np.flatnonzero(~np.isnan(self.floor)):
            new = self.index.labels.get(old_ids[old])
            if new is not None:
                floor[new] = self.floor[old]
        self.floor = floor

    def neighbours(self, item_id: str, k: int | None = None) -> Neighbours:
        """The ``k`` nearest other items of an indexed item; ``[]`` if absent.

        Order: score (rounded to 4 decimals, as published) descending, then item id; so
        items with equal vectors, common among catalogue records that share category,
        brand and price band, come in one order whatever the graph. Up to
        ``exact_up_to`` items the scan is exact and a tie group straddling the cut is
        resolved by id too, which makes the list a function of the indexed vectors alone.
        Beyond that, the candidates are HNSW's and a replay gives equal lists up to the
        graph's recall.
        """
        k = self.params.list_size if k is None else k
        vec = self.vector(item_id)
        if vec is None or k <= 0:
            return []
        if len(self.index) > self.params.exact_up_to:
            found = [(i, round(s, 4)) for i, s in self.index.query(vec, k + 1)]
        else:
            found = self._scan(vec, k + 1)
        found.sort(key=lambda row: (-row[1], row[0]))
        return [(i, s) for i, s in found if i != item_id][:k]

    def _scan(self, vec: Matrix, k: int) -> Neighbours:
        """Every item scoring at least the ``k``-th best score (ties included)."""
        labels, raw = self.index.scan(vec)
        scores = np.round(raw.astype(np.float64), 4)
        if len(scores) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)
        else:
            keep = np.arange(len(scores))
        ids = self.index.ids
        return [(ids[int(labels[j])], float(scores[j])) for j in keep]

    def vector(self, item_id: str) -> Matrix | None:
        """The vector of ``item_id`` as indexed, or ``None`` (unknown or deleted)."""
        label = self.index.labels.get(item_id)
        return None if label is None else self.index.indexed.get(label)

    def lists(self, items: Iterable[str], k: int | None = None) -> dict[str, Neighbours | None]:
        """Similar-items list per item; ``None`` for an item not in the index (remove it).

        Each list computed here is tracked by :meth:`step` from then on.
        """
        k = self.params.list_size if k is None else k
        out: dict[str, Neighbours | None] = {}
        for item in items:
            if item not in self.index:
                out[item] = None
                continue
            out[item] = found = self.neighbours(item, k)
            self._set_floor(item, found, k)
        return out

    def items(self, keep: Callable[[str], bool] | None = None) -> list[str]:
        """Every item indexed (live), optionally only those ``keep`` accepts."""
        ids = self.index.ids
        return [ids[lb] for lb in self.index.indexed if keep is None or keep(ids[lb])]


@dataclass(slots=True)
class StaleLists:
    """Lists marked stale by :meth:`VectorReplica.step`, waiting to be recomputed.

    While vector records keep coming (a catalogue loaded in bulk), nearly every flush
    reaches nearly every list: new items score into them, and equal content vectors tie
    with a list's last score. Recomputing after each flush cost O(items² / flush_size)
    scans; recomputing once the records pause costs each list one scan. The lists are
    due when a poll found no record, or when the oldest has waited
    ``max(min_wait_s, the last recompute's duration)``: a steady trickle still gets its
    lists within that time, and a long bulk load spends at most half the replica's time
    recomputing lists that the next records would make stale again.
    """

    min_wait_s: float = 1.0
    items: set[str] = field(default_factory=set)
    since: float | None = None  # when the oldest waiting list was marked
    last_took_s: float = 0.0

    def add(self, items: Iterable[str], now: float) -> None:
        """Mark ``items``' lists stale at ``now`` (seconds, any monotonic clock)."""
        before = len(self.items)
        self.items.update(items)
        if self.since is None and len(self.items) > before:
            self.since = now

    def due(self, now: float, idle: bool) -> bool:
        """True when the waiting lists should be recomputed now."""
        if self.since is None:
            return False
        return idle or now - self.since >= max(self.min_wait_s, self.last_took_s)

    def take(self) -> set[str]:
        """The waiting lists, emptying the set; report the recompute's time to :meth:`took`."""
        items, self.items, self.since = self.items, set(), None
        return items

    def took(self, seconds: float) -> None:
        """How long the last recompute (and publication) of the taken lists took."""
        self.last_took_s = seconds
