"""CPU per user list: microseconds of :func:`streams.recommend.recommend` on real lists.

``python -m streams.evaluation.blend_cost --dataset movielens --data-dir ../shared/data``
replays the first three quarters of the data set through :class:`LocalPipeline`, takes
its ``--users`` most active users, reads their published lists once into one
:class:`Lists` (as a worker's batch reads them with one MGET) and times building every
one of their lists, best of ``--repeat``. A user list's cost grows with the votes it
sums: MovieLens users hold dense lists (about 1,000 neighbour votes each), the REES46
slice sparse ones (about 90). It prints one JSON line; ``--digest`` adds a hash of the
lists built, to check that a faster blend ranks exactly as before.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.events import Interaction
from streams.evaluation.datasets import SPECS, load, spec_for
from streams.pipeline import LocalPipeline
from streams.recommend import Lists, plan, recommend
from streams.settings import load_settings


def measure(dataset: str, data_dir: Path, users: int, repeat: int) -> dict[str, Any]:
    """The figures printed by :func:`main`."""
    s = load_settings()
    pipe = LocalPipeline(s)
    events = load(spec_for(dataset), data_dir).events
    at = [n for n, e in enumerate(events) if isinstance(e, Interaction)]
    pipe.apply_all(events[: at[len(at) * 3 // 4]])  # three quarters of the interactions
    chosen = sorted(pipe.users, key=lambda u: (-len(pipe.users[u].recent), u))[:users]
    plans = {u: plan(pipe.users[u], pipe.catalog.get) for u in chosen}
    lists = Lists(trending=pipe.trending(), popular=pipe.trending(kind="p"))
    for p in plans.values():
        found = pipe.lists_for(p)
        lists.bought.update(found.bought)
        lists.viewed.update(found.viewed)
        lists.category.update(found.category)

    def build() -> dict[str, list[Any]]:
        return {
            u: recommend(
                pipe.users[u],
                plans[u],
                lists,
                pipe.catalog.get,
                s.list_size,
                rules=s.business_rules,
                category_cap=s.category_cap,
            )
            for u in chosen
        }

    built = build()
    gc.collect()
    gc.freeze()  # the replayed state is not garbage: keep collections off it
    try:
        best = min(_timed(build) for _ in range(repeat))
    finally:
        gc.unfreeze()
    votes = sum(
        len(lists.bought.get(a, ())) + len(lists.viewed.get(a, ()))
        for p in plans.values()
        for a in p.anchors
    )
    digest = hashlib.sha256(
        json.dumps({u: [r.to_list() for r in recs] for u, recs in built.items()}).encode()
    ).hexdigest()[:16]
    return {
        "dataset": dataset,
        "users": len(chosen),
        "us_per_list": round(best / max(1, len(chosen)) * 1e6, 1),
        "neighbour_votes_per_list": round(votes / max(1, len(chosen))),
        "repeat": repeat,
        "digest": digest,
    }


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(SPECS), default="movielens")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--users", type=int, default=800)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--digest", action="store_true", help="print a hash of the lists built")
    a = p.parse_args(argv)
    out = measure(a.dataset, a.data_dir, a.users, a.repeat)
    if not a.digest:
        del out["digest"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
