"""ANN recall@10 of the shipped HNSW index against exact search, on vectors learned from a replay.

``python -m streams.models.ann_bench --data-dir ../shared/data [--limit N]`` replays MovieLens
through the online recommender (learning only), flushes the index, and queries it with every
user's vector at the shipped ``ef``; prints recall@10, query latency and index statistics.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from schemas.events import Interaction
from streams.models import features
from streams.models.index import ann_recall
from streams.models.recommender import ModelConfig, OnlineRecommender
from streams.sources import read_movielens
from streams.sources.records import SourceError


def replayed(data_dir: Path, limit: int | None) -> OnlineRecommender:
    """A recommender that has learned the MovieLens stream (first ``limit`` interactions)."""
    rec = OnlineRecommender(ModelConfig())
    events = [
        e for e in read_movielens(data_dir / "movielens-100k") if not isinstance(e, SourceError)
    ]
    n = 0
    for ev in events:
        if isinstance(ev, Interaction):
            if limit is not None and n >= limit:
                break
            n += 1
            rec.learn(ev)
        else:
            rec.learn_catalog(ev)
    rec.index.flush(rec.now_ts)
    return rec


def measure(rec: OnlineRecommender, k: int = 10) -> dict[str, float]:
    """Recall@k of ANN vs exact search over the live vectors, with user vectors as queries."""
    queries = [features.user_vector(rec, p) for p in rec.profiles.values()]
    mat = np.stack([q for q in queries if q is not None])
    t0 = time.perf_counter()
    for q in mat:
        rec.index.query(q, k)
    per_query_us = (time.perf_counter() - t0) / len(mat) * 1e6
    return {
        "recall_at_10": round(ann_recall(rec.index, mat, k), 4),
        "queries": len(mat),
        "query_us": round(per_query_us, 1),
        "items": len(rec.index),
        "ef": rec.index.ef,
        "writes": rec.index.updates,
        "rebuilds": rec.index.rebuilds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Replay, measure, print."""
    p = argparse.ArgumentParser(prog="python -m streams.models.ann_bench")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    rec = replayed(args.data_dir, args.limit)
    for key, value in measure(rec).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
