"""One evaluation run: load a data set, replay it through every model, write the report."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]
from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

from streams.evaluation import report
from streams.evaluation.ablation import VARIANTS, online
from streams.evaluation.baselines import BatchALS, CoOccurrence, Popularity, RecentPopularity
from streams.evaluation.datasets import DatasetSpec, load, spec_for
from streams.evaluation.metrics import Answers, series, summarize
from streams.evaluation.protocol import MAX_K, Recommender, Replay, replay
from streams.evaluation.system import PipelineModel
from streams.settings import Settings, load_settings

# Settings that change what the pipeline recommends (the rest is infrastructure).
PIPELINE_SETTINGS = (
    "partitions", "recent_size", "half_life_s", "neighbours_kept", "trending_size",
    "list_size", "item_list_size",
)  # fmt: skip
ALS_PARAMS: dict[str, Any] = {
    "factors": 64, "regularization": 5.0, "alpha": 1.0, "iterations": 15, "seed": 42,
}  # fmt: skip

ModelFactory = Callable[[DatasetSpec, Settings], Recommender]

MODELS: dict[str, ModelFactory] = {
    **{name: partial(online, name) for name in VARIANTS},
    "pipeline": lambda spec, s: PipelineModel(s),
    "popularity": lambda spec, s: Popularity(),
    "popularity_recent": lambda spec, s: RecentPopularity(spec.recent_half_life_ms),
    "cooc": lambda spec, s: CoOccurrence(20, 20, spec.case_types),
    "cooc_allpairs": lambda spec, s: CoOccurrence(20, None, spec.case_types),
    "als": lambda spec, s: BatchALS(False, retrain_every_ms=spec.retrain_every_ms, **ALS_PARAMS),
    "als_foldin": lambda spec, s: BatchALS(
        True, retrain_every_ms=spec.retrain_every_ms, **ALS_PARAMS
    ),
}


# `make eval`: the shipped model, the workers' pipeline and the baselines. The ablation
# variants of the online recommender run with `--models all` (`make ablation`).
DEFAULT_MODELS = tuple(n for n in MODELS if n == "system" or n not in VARIANTS)


def build_models(
    spec: DatasetSpec, settings: Settings, names: Sequence[str] | None = None
) -> dict[str, Recommender]:
    """Fresh instances of the named models (default: the main table; "all"), in table order."""
    if names is None:
        chosen = list(DEFAULT_MODELS)
    elif list(names) == ["all"]:
        chosen = list(MODELS)
    else:
        chosen = list(names)
    unknown = [n for n in chosen if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    return {name: MODELS[name](spec, settings) for name in chosen}


def run(
    dataset: str,
    data_dir: Path,
    out_dir: Path,
    settings: Settings | None = None,
    ks: Sequence[int] = (10, 20),
    limit: int | None = None,
    progress: bool = True,
    models: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Replay ``dataset`` test-then-learn through the system and the baselines.

    Writes ``eval-<dataset>.json``, ``.md`` and ``.png`` under ``out_dir`` and returns
    what the JSON holds.
    """
    spec = spec_for(dataset)
    settings = load_settings() if settings is None else settings
    started = time.perf_counter()
    loaded = load(spec, Path(data_dir), limit)
    chosen = build_models(spec, settings, models)
    with (
        threadpool_limits(1, "blas"),
        tqdm(total=len(loaded.events), disable=not progress, unit="ev", desc=dataset) as bar,
    ):
        result = replay(
            loaded.events, chosen, ks, MAX_K, spec.horizon_ms, bar.update, spec.case_types
        )
    out = _summary(spec, settings, result, ks, chosen)
    out.update(
        source=str(loaded.source),
        limit=limit,
        rejected_records=dict(loaded.rejected),
        runtime_s=round(time.perf_counter() - started, 1),
    )
    report.write(out, Path(out_dir))
    return out


def _summary(
    spec: DatasetSpec,
    settings: Settings,
    result: Replay,
    ks: Sequence[int],
    models: dict[str, Recommender],
) -> dict[str, Any]:
    sizes = [len(c.targets) for c in result.cases]
    times = [c.ts for c in result.cases]
    origin = times[0] // spec.bucket_ms * spec.bucket_ms if times else 0
    metrics, points, seconds = {}, {}, {}
    for name, r in result.runs.items():
        answers = Answers(r.ranks, dict(r.target_hits), r.recommended)
        metrics[name] = summarize(answers, sizes, ks, len(result.items))
        points[name] = series(r.ranks, times, min(ks), spec.bucket_ms, origin)
        seconds[name] = {"learn": round(r.learn_s, 1), "recommend": round(r.recommend_s, 1)}
        model = models[name]
        if isinstance(model, BatchALS):
            seconds[name]["trainings"] = model.trainings
            seconds[name]["train"] = round(model.train_s, 1)
    return {
        "dataset": spec.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_interactions": result.n_interactions,
        "n_positives": result.n_positives,
        "n_cases": len(result.cases),
        "skipped": {"no_history": result.n_cold_user, "repeat_item": result.n_repeat_item},
        "catalogue_size": len(result.items),
        "metrics": metrics,
        "model_seconds": seconds,
        "series": {
            "metric": f"HitRate@{min(ks)}",
            "bucket_ms": spec.bucket_ms,
            "bucket_label": spec.bucket_label,
            "points": points,
        },
        "protocol": {
            "ks": list(ks),
            "max_k": MAX_K,
            **asdict(spec),
            "case_types": sorted(spec.case_types),
            "als": ALS_PARAMS,
        },
        "settings": {name: getattr(settings, name) for name in PIPELINE_SETTINGS},
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "implicit"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out
