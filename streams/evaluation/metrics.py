"""Ranking metrics over prequential cases, from 1-based ranks (0 = target not listed).

Every case has one target item, so for a case with target rank ``r``:

- HitRate@K = 1 if ``1 <= r <= K`` else 0
- NDCG@K = ``1 / log2(r + 1)`` if ``1 <= r <= K`` else 0 (one relevant item, so IDCG = 1)
- MRR = ``1 / r`` if the target is in the list at all (lists are at most 20 long) else 0
- Recall@K = ``|top-K ∩ targets| / |targets|``, where ``targets`` are the user's new
  positives within the horizon starting at the case (see :class:`~.protocol.Case`)

each averaged over cases. Catalogue coverage@K = distinct items shown in any top-K list
over the number of items known at the end of the replay.

>>> hit_rate([1, 11, 0, 3], 10)
0.5
>>> round(ndcg([1, 3, 0], 10), 4)
0.5
>>> mrr([1, 4, 0, 0])
0.3125
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def hit_rate(ranks: Sequence[int], k: int) -> float:
    """Share of cases whose target is in the top ``k``."""
    return _mean([1.0 if 0 < r <= k else 0.0 for r in ranks])


def ndcg(ranks: Sequence[int], k: int) -> float:
    """Mean NDCG@k with a single relevant item per case."""
    return _mean([1.0 / math.log2(r + 1) if 0 < r <= k else 0.0 for r in ranks])


def mrr(ranks: Sequence[int]) -> float:
    """Mean reciprocal rank; a target missing from the (bounded) list counts 0."""
    return _mean([1.0 / r if r > 0 else 0.0 for r in ranks])


def recall(hits: Sequence[int], sizes: Sequence[int]) -> float:
    """Mean over cases of ``hits / |targets|``."""
    if len(hits) != len(sizes):
        raise ValueError("hits and sizes must have one entry per case")
    return _mean([h / n for h, n in zip(hits, sizes, strict=True)])


def coverage(recommended: set[str], catalogue_size: int) -> float:
    """Distinct items recommended over catalogue size."""
    return len(recommended) / catalogue_size if catalogue_size else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True, slots=True)
class Answers:
    """One model's answers over all cases (see :class:`~.protocol.ModelRun`)."""

    ranks: Sequence[int]
    target_hits: dict[int, Sequence[int]]
    recommended: dict[int, set[str]]


def summarize(
    answers: Answers, target_sizes: Sequence[int], ks: Sequence[int], catalogue_size: int
) -> dict[str, float]:
    """Every metric of one model, keyed like ``HitRate@10``, ``NDCG@20``, ``MRR``."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HitRate@{k}"] = hit_rate(answers.ranks, k)
        out[f"Recall@{k}"] = recall(answers.target_hits.get(k, []), target_sizes)
        out[f"NDCG@{k}"] = ndcg(answers.ranks, k)
        out[f"Coverage@{k}"] = coverage(answers.recommended.get(k, set()), catalogue_size)
    out["MRR"] = mrr(answers.ranks)
    return out


def series(
    ranks: Sequence[int], times: Sequence[int], k: int, bucket_ms: int, origin: int
) -> list[tuple[int, float, int]]:
    """HitRate@k per time bucket: ``(bucket_start_ts, hit_rate, n_cases)``, oldest first."""
    if len(ranks) != len(times):
        raise ValueError("ranks and times must have one entry per case")
    hits: dict[int, list[int]] = {}
    for r, t in zip(ranks, times, strict=True):
        b = (t - origin) // bucket_ms
        hits.setdefault(b, []).append(1 if 0 < r <= k else 0)
    return [(origin + b * bucket_ms, sum(h) / len(h), len(h)) for b, h in sorted(hits.items())]
