"""Pure parts of the scale measurements: candidate user-list encodings, recall, percentiles.

The published user record (``streams.serving.encode_user``) repeats the item id, a
4-decimal score and a reason string per entry. Its size is what 50 M user lists cost in
Redis, so the measurement compares it with denser encodings that carry the same list.
The shipped alternative is the packed record (``streams.packed``); the parallel arrays
here are a proposal measured beside it, with a decoder back to the
``[item_id, score, reason]`` entries so that a test can check that nothing but score
precision is lost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from streams.blending import Rec

SCORE_SCALE = 1000  # milli-scores: 3 decimals, enough to keep a ranked list's order readable


def compact_user(
    recs: Sequence[Rec],
    recent: Sequence[str],
    version: int,
    variant: str,
    computed_at_ms: int,
    event_ts: int,
    scores: bool = True,
) -> bytes:
    """The user record as parallel arrays: ids, milli-scores, reasons as table indexes.

    A list's reasons repeat (most point at one of the ten anchors), so each distinct reason
    is written once in ``w`` and every entry refers to it by index. Without ``scores`` the
    order alone carries the rank.
    """
    table: dict[str, int] = {}
    for r in recs:
        table.setdefault(r.reason, len(table))
    doc: dict[str, Any] = {
        "v": 2,
        "version": version,
        "variant": variant,
        "computed_at": computed_at_ms,
        "event_ts": event_ts,
        "i": [r.item_id for r in recs],
    }
    if scores:
        doc["s"] = [round(r.score * SCORE_SCALE) for r in recs]
    doc["w"] = list(table)
    doc["r"] = [table[r.reason] for r in recs]
    doc["recent"] = list(recent)
    return orjson.dumps(doc)


def expand_compact(raw: bytes) -> list[list[Any]]:
    """The ``[item_id, score, reason]`` entries of a :func:`compact_user` record.

    Without scores in the record, the score is ``None``.
    """
    doc = orjson.loads(raw)
    scores = doc.get("s")
    return [
        [item, None if scores is None else scores[n] / SCORE_SCALE, doc["w"][doc["r"][n]]]
        for n, item in enumerate(doc["i"])
    ]


def recall_at_k(found: Sequence[Iterable[int]], truth: Sequence[Iterable[int]]) -> float:
    """Mean share of each exact top-k set that the approximate answer contains."""
    if len(found) != len(truth):
        raise ValueError("one answer per query is needed")
    hits = total = 0
    for got, want in zip(found, truth, strict=True):
        w = set(want)
        hits += len(w & set(got))
        total += len(w)
    return 1.0 if total == 0 else hits / total


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def list_agreement(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, int]:
    """How many users of ``a`` have the same list in ``b``: whole (items, scores and
    reasons), in item order, and as the set of their first ten items.

    ``a`` and ``b`` map a user to the ``items`` of the published record.
    """

    def ids(items: Any) -> list[Any]:
        return [row[0] for row in items or []]

    return {
        "lists": sum(b.get(u) == items for u, items in a.items()),
        "item_order": sum(ids(b.get(u)) == ids(items) for u, items in a.items()),
        "top10_set": sum(set(ids(b.get(u))[:10]) == set(ids(items)[:10]) for u, items in a.items()),
    }
