"""In-process throughput: events/s of ``LocalPipeline.apply`` and of the online models' ``learn``.

``python -m streams.evaluation.throughput --data-dir ../shared/data`` replays the MovieLens
stream through each (catalogue first, then every interaction) and prints events/s of the
interactions; with ``--recommend`` the online models also build the user's list after
every event, as a worker does when it republishes a list.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from schemas.events import CatalogItem, Interaction
from streams.models.recommender import ModelConfig, OnlineRecommender
from streams.pipeline import LocalPipeline
from streams.settings import load_settings
from streams.sources import read_movielens
from streams.sources.records import SourceError


def _stream(data_dir: Path, limit: int | None) -> tuple[list[CatalogItem], list[Interaction]]:
    cat: list[CatalogItem] = []
    inter: list[Interaction] = []
    for ev in read_movielens(data_dir / "movielens-100k"):
        if isinstance(ev, CatalogItem):
            cat.append(ev)
        elif isinstance(ev, Interaction):
            inter.append(ev)
        elif not isinstance(ev, SourceError):
            raise TypeError(ev)
    return cat, inter[:limit]


def pipeline_rate(cat: list[CatalogItem], inter: list[Interaction]) -> float:
    """Interactions per second through ``LocalPipeline.apply``."""
    pipe = LocalPipeline(load_settings())
    for c in cat:
        pipe.apply_catalog(c)
    t0 = time.perf_counter()
    for ev in inter:
        pipe.apply(ev)
    return len(inter) / (time.perf_counter() - t0)


def online_rate(cat: list[CatalogItem], inter: list[Interaction], recommend: bool) -> float:
    """Interactions per second through the online models (and a list per event)."""
    rec = OnlineRecommender(ModelConfig())
    for c in cat:
        rec.learn_catalog(c)
    t0 = time.perf_counter()
    for ev in inter:
        rec.learn(ev)
        if recommend:
            rec.recommend_recs(ev.user_id, 50)
    return len(inter) / (time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print events/s."""
    p = argparse.ArgumentParser(prog="python -m streams.evaluation.throughput")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    cat, inter = _stream(args.data_dir, args.limit)
    print(f"interactions: {len(inter)}")
    print(f"LocalPipeline.apply: {pipeline_rate(cat, inter):,.0f} events/s")
    print(f"OnlineRecommender.learn: {online_rate(cat, inter, False):,.0f} events/s")
    print(f"OnlineRecommender.learn + list: {online_rate(cat, inter, True):,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
