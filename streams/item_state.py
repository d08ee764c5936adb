"""Per-item state on the partition that owns the item: popularity and neighbour lists.

Popularity (``trend``) is event-time decayed (see :mod:`streams.decay`); neighbour scores
are plain sums of pair weights, integers in units of 2**-24
(:data:`streams.user_state.WEIGHT_GRID`). Decaying them with the trending half-life
(3 days) lost most of the co-visitation evidence of catalogues whose pairs accumulate
over months (measured in docs/MODELS.md).

Neighbour scores are kept per source partition (the user partition whose interactions
brought them), each list holding at most ``neighbours_kept`` neighbours (the workers pass
``Settings.neighbours_per_partition``, the item's budget split over the partitions):
when one is full, the weakest is dropped (lowest score, ties: the greatest id), which
bounds memory per item whatever the traffic. A capped list depends on the order its
pairs arrived in (a neighbour dropped and seen again starts from zero). One source
partition's pairs always arrive in the same order, its log's; pairs from different
source partitions interleave as the workers' batches happen to meet. Kept apart, every
list sees one fixed order, and a published list, the sum of an item's lists taken in
partition order, is the same in every replay of a log, capped or not, whatever the
number of workers. The cost: the lists of different partitions repeat many of the same
neighbours, and each holds only its share of the budget (docs/MODELS.md, "The neighbour
cap").

Finding the weakest by a scan costs O(kept) per new neighbour of a full list, and on a
busy item nearly every pair brings a new neighbour (it was 40 % of the in-process time).
A lazy min-heap finds the weakest in O(log kept): one entry per neighbour, with the score
it had when pushed, brought up to date only when it reaches the top (scores only grow).
The heap is derived state, never serialised: it is rebuilt from the scores when a list
first overflows after a load. Most newcomers to a full list are weaker than every
neighbour it holds; they are turned away before they touch the heap.

An item's state is one changelog record, and the producers refuse records over 1 MB
(the worker would fail on every retry). Ids are up to 256 characters of up to 4 bytes,
so a count cap alone bounds a record only for small counts. Each list also holds at most
``list_bytes`` (:func:`list_bytes`: the record's budget split over every list it can
hold) of encoded entries, the weakest going first. Like the count cap, this depends on
the list's own arrival order only. A list short enough to fit whatever its ids
(``MAX_ENTRY_BYTES`` each) is never measured: with the default settings, none is.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from schemas.ids import MAX_ID_LEN
from streams import decay
from streams.ranked import best_first
from streams.user_state import BOUGHT, VIEWED, WEIGHT_GRID, Delta

# An item's record stays below this many bytes: the producers' request limit is 1 MB.
RECORD_BYTES = 900_000
# Per source partition outside the neighbour lists: its trend and applied offset, and the
# keys and braces of its two lists.
PARTITION_BYTES = 128
# One list entry beyond its id's JSON string: a colon, a comma, and a score (an integer
# or a float: at most 24 characters).
ENTRY_BYTES = 26
# The most an entry can take: every character of a longest id 4 bytes, plus quotes.
MAX_ENTRY_BYTES = 4 * MAX_ID_LEN + 2 + ENTRY_BYTES
UNBOUNDED = 1 << 62
RELATIONS = (BOUGHT, VIEWED)


def list_bytes(partitions: int) -> int:
    """The encoded size one source partition's list of one relation may reach, so that
    an item's record (every relation's list from every partition) stays under
    :data:`RECORD_BYTES`."""
    return (RECORD_BYTES - PARTITION_BYTES * partitions) // (len(RELATIONS) * partitions)


def entry_bytes(item: str) -> int:
    """What ``item``'s entry adds to its list's JSON (an upper bound)."""
    return len(orjson.dumps(item)) + ENTRY_BYTES


@dataclass(slots=True)
class ItemState:
    """Popularity counters and neighbour lists of one item."""

    count: float = 0.0
    # Decayed popularity (log space) per source partition: merged in partition order
    # (see ``trend``), so the total does not depend on how partitions interleave.
    trends: dict[int, float] = field(default_factory=dict)
    last_ts: int = 0
    # relation -> source partition -> neighbour -> summed pair weight (units of 2**-24)
    neighbours: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    # Last applied source offset per source partition, stored with the state it guards so
    # that state and de-duplication are written (and recovered) together.
    applied: dict[int, int] = field(default_factory=dict)
    # Per (relation, source partition): lazy min-heap of (score, descending key,
    # neighbour); only for lists that overflowed.
    heaps: dict[tuple[str, int], list[_Entry]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Per (relation, source partition): the summed entry_bytes of its neighbours; only for
    # lists long enough to be measured (see _admit), None until one is (most items never
    # have one, and an empty dict is 64 bytes per item). Derived, never serialised.
    sizes: dict[tuple[str, int], int] | None = field(default=None, compare=False, repr=False)
    _trend: float | None = field(default=None, compare=False, repr=False)

    @property
    def trend(self) -> float:
        """The decayed popularity, log space: the sources' trends merged in partition
        order (``streams.decay.merge``), the same whatever order their events met in."""
        if self._trend is None:
            total = decay.NEG_INF
            for source in sorted(self.trends):
                total = decay.merge(total, self.trends[source])
            self._trend = total
        return self._trend

    def seen(self, source_partition: int, offset: int) -> bool:
        """True when the interaction at this source offset was applied to this item."""
        return offset <= self.applied.get(source_partition, -1)

    def apply(
        self,
        delta: Delta,
        half_life_s: float,
        neighbours_kept: int,
        source: int = 0,
        list_bytes: int = UNBOUNDED,
    ) -> None:
        """Apply one delta addressed to this item, in its flat form, from ``source``."""
        _, weight, ts, relation, other = delta
        if ts > self.last_ts:
            self.last_ts = ts
        if relation is None:
            self.popularity(weight, ts, half_life_s, source)
        else:
            assert other is not None
            self.neighbour(relation, source, other, weight, neighbours_kept, list_bytes)

    def popularity(self, weight: float, ts: int, half_life_s: float, source: int = 0) -> None:
        """Add ``weight`` to the popularity count and, at ``ts``, to the decayed trend of
        partition ``source``."""
        self.count += weight
        trends = self.trends
        trends[source] = decay.add(trends.get(source, decay.NEG_INF), weight, ts, half_life_s)
        self._trend = None

    def gain(
        self,
        relation: str,
        source: int,
        pairs: Sequence[Any],
        neighbours_kept: int,
        list_bytes: int = UNBOUNDED,
    ) -> None:
        """Add ``pairs``, flat ``[other, weight, other, weight, ...]``, from partition
        ``source`` to the neighbour scores of ``relation`` (the item side's hot path:
        about 27 pairs per event); the list keeps at most ``neighbours_kept`` neighbours
        and ``list_bytes`` of entries."""
        scores = self._list(relation, source)
        score_of = scores.get
        it = iter(pairs)
        for other, weight in zip(it, it, strict=True):
            before = score_of(other)
            if before is None:
                self._admit((relation, source), scores, other, weight, neighbours_kept, list_bytes)
            else:
                # Scores only grow: the neighbour's heap entry is now stale, and is brought
                # up to date when it reaches the top (see _drop_weakest).
                scores[other] = before + weight

    def neighbour(
        self,
        relation: str,
        source: int,
        other: str,
        weight: float,
        neighbours_kept: int,
        list_bytes: int = UNBOUNDED,
    ) -> None:
        """:meth:`gain` for one pair, without its iterator: the items that gain an
        interaction's item get one pair each, about 13 per event."""
        scores = self._list(relation, source)
        before = scores.get(other)
        if before is None:
            self._admit((relation, source), scores, other, weight, neighbours_kept, list_bytes)
        else:
            scores[other] = before + weight

    def _list(self, relation: str, source: int) -> dict[str, float]:
        """The neighbour scores ``source`` brought to ``relation``, created when missing."""
        lists = self.neighbours.get(relation)
        if lists is None:
            lists = self.neighbours[relation] = {}
        scores = lists.get(source)
        if scores is None:
            scores = lists[source] = {}
        return scores

    def _admit(
        self,
        key: tuple[str, int],
        scores: dict[str, float],
        other: str,
        weight: float,
        kept: int,
        max_bytes: int,
    ) -> None:
        """A new neighbour: kept unless the list is full (in count or in bytes) and it is
        the weakest."""
        heap = self.heaps.get(key)
        if heap is not None:
            if heap and weight < heap[0][0] and len(scores) >= kept:
                # Below the lowest entry, so below every neighbour's score (entries are
                # never above their neighbour's): the newcomer is the one dropped.
                return
            heapq.heappush(heap, (weight, _descending(other), other))
        scores[other] = weight
        gone = None
        if len(scores) > kept:
            if heap is None:
                heap = self.heaps[key] = _heap(scores)
            gone = _drop_weakest(scores, heap)
        if len(scores) * MAX_ENTRY_BYTES > max_bytes:
            self._fit(key, scores, other, gone, max_bytes)

    def _fit(
        self,
        key: tuple[str, int],
        scores: dict[str, float],
        added: str,
        gone: str | None,
        max_bytes: int,
    ) -> None:
        """Drop the weakest neighbours until the list's entries take ``max_bytes`` or
        less; ``added`` just came in and ``gone`` (if any) just went."""
        sizes = self.sizes
        if sizes is None:
            sizes = self.sizes = {}
        size = sizes.get(key)
        if size is None:  # first measured: the list as it is now
            size = sum(map(entry_bytes, scores))
        else:
            size += entry_bytes(added) - (0 if gone is None else entry_bytes(gone))
        if size > max_bytes:
            heap = self.heaps.get(key)
            if heap is None:
                heap = self.heaps[key] = _heap(scores)
            while size > max_bytes:
                size -= entry_bytes(_drop_weakest(scores, heap))
        if len(scores) * MAX_ENTRY_BYTES > max_bytes:
            sizes[key] = size
        else:  # short enough not to be measured: measured afresh when it is again
            sizes.pop(key, None)

    def scores(self, relation: str) -> Mapping[str, float]:
        """Every kept neighbour in ``relation`` with its score: the sum of its scores in
        the lists of the source partitions, added in partition order."""
        lists = self.neighbours.get(relation)
        if not lists:
            return {}
        if len(lists) == 1:
            return next(iter(lists.values()))
        first, *rest = sorted(lists)
        total = dict(lists[first])
        get = total.get
        for source in rest:
            for other, score in lists[source].items():
                before = get(other)
                total[other] = score if before is None else before + score
        return total

    def top(self, relation: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest neighbours in ``relation`` with their summed weights, best first."""
        return list(islice(best_first(self.scores(relation)), n))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog."""
        return {
            "c": self.count,
            "t": {str(sp): t for sp, t in self.trends.items()},
            "l": self.last_ts,
            # JSON keys are text
            "n": {
                r: {str(sp): s for sp, s in lists.items()} for r, lists in self.neighbours.items()
            },
            "a": {str(k): v for k, v in self.applied.items()},
            "u": 1,  # neighbour scores in units of 2**-24
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemState:
        """Inverse of :meth:`to_dict`."""
        trend = data["t"]
        if not isinstance(trend, dict):  # written before trends were kept per source
            trend = {} if trend is None else {"0": trend}
        return cls(
            count=data["c"],
            trends={int(sp): t for sp, t in trend.items()},
            last_ts=data["l"],
            neighbours={r: _lists(lists, "u" in data) for r, lists in data["n"].items()},
            applied={int(k): v for k, v in data.get("a", {}).items()},
        )


def _lists(lists: dict[str, Any], in_units: bool) -> dict[int, dict[str, float]]:
    """Per-source lists from JSON. A state written before scores were kept per source
    holds one list, ``{neighbour: score}``; it becomes partition 0's. One written before
    scores were kept in units of 2**-24 holds them as floats on that grid."""
    if any(not isinstance(v, dict) for v in lists.values()):
        lists = {"0": lists}
    if in_units:
        return {int(sp): dict(s) for sp, s in lists.items()}
    return {int(sp): {k: round(v * WEIGHT_GRID) for k, v in s.items()} for sp, s in lists.items()}


# A heap entry: (score when pushed, the neighbour's descending key, the neighbour).
_Entry = tuple[float, bytes, str]
# UTF-8 bytes (never 0xFE or 0xFF) mapped to 254 - b: their order reversed, all below
# 0xFF, which ends every key so that a prefix sorts after the longer ids it starts.
_REVERSE = bytes(254 - b if b < 255 else 0 for b in range(256))


def _descending(item: str) -> bytes:
    """A key that sorts in reverse id order, compared in C (a str subclass's ``__lt__``
    ran in Python for every tie of scores, and ties are common: pair weights are few)."""
    return item.encode("utf-8", "surrogatepass").translate(_REVERSE) + b"\xff"


def _heap(scores: dict[str, float]) -> list[_Entry]:
    heap: list[_Entry] = [(s, _descending(k), k) for k, s in scores.items()]
    heapq.heapify(heap)
    return heap


def _drop_weakest(scores: dict[str, float], heap: list[_Entry]) -> str:
    """Delete and return the last neighbour in :meth:`ItemState.top` order: lowest score,
    greatest id.

    Every neighbour has one heap entry, holding its score when pushed: scores only grow
    (pair weights are not negative), so an entry is never above its neighbour's true
    place. An entry whose score is out of date is pushed down to the current score when
    it reaches the top; the first entry found up to date is the weakest neighbour, and
    among equal scores the descending key (greatest id first) breaks the tie.
    """
    while True:
        score, key, other = heap[0]
        current = scores[other]
        if current == score:
            break
        heapq.heapreplace(heap, (current, key, other))
    heapq.heappop(heap)
    del scores[other]
    return other


def scored_list(
    ranked: list[tuple[str, float]], now_ms: int, half_life_s: float
) -> list[list[Any]]:
    """Log-space scores as decayed weights at ``now_ms``, to 6 significant digits.

    A trending list published at an earlier ``now_ms`` holds the same values scaled, and
    user lists blend ``score / top``. Rounded to a fixed number of *decimals* (it was 4),
    two close items rounded apart at one scale and together at another, so a user list
    built before the final trending refresh ordered them otherwise than one built after
    it (seen in a replay test). Significant digits keep ``score / top`` the same at any
    scale, to 5e-7.
    """
    return [[item, _significant(decay.value_at(s, now_ms, half_life_s))] for item, s in ranked]


def _significant(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")
