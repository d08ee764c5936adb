"""The shipped online recommender and its ablations, as evaluation models (docs/MODELS.md)."""

from __future__ import annotations

from dataclasses import replace

from streams.evaluation.datasets import DatasetSpec
from streams.models.candidates import SOURCES
from streams.models.recommender import ModelConfig, OnlineRecommender
from streams.models.rerank import RerankParams
from streams.settings import Settings

# ANN candidates (``ann``, ``similar``) are off: on MovieLens they cost 0.15 points of
# HitRate@10 (the ``with_ann`` row of docs/MODELS.md). Catalogues with fresh items turn
# ``similar`` on, which is how a new item is proposed from its content vector.
SHIPPED = ModelConfig(sources=("covisit", "trending", "category"))

# name -> how the configuration differs from the shipped one. The ranker, diversity and
# exploration rows are measured against ``with_ann`` (every source on), as in the table.
VARIANTS: dict[str, dict[str, object]] = {
    "system": {},
    "with_ann": {"sources": SOURCES},
    "no_ranker": {"sources": SOURCES, "use_ranker": False},
    "ranker_weight_1": {"sources": SOURCES, "ranker_weight": 1.0},
    "covisit_only": {"use_ranker": False, "sources": ("covisit",)},
    "ann_only": {"use_ranker": False, "sources": ("ann",)},
    "trending_only": {"use_ranker": False, "sources": ("trending", "category")},
    "with_diversity": {"sources": SOURCES, "rerank": RerankParams(category_cap=4)},
    "with_exploration": {"sources": SOURCES, "rerank": RerankParams(explore_slot=9, epsilon=0.1)},
}


def online(name: str, spec: DatasetSpec, settings: Settings) -> OnlineRecommender:
    """A fresh recommender in configuration ``name``."""
    config = replace(SHIPPED, positive_types=spec.case_types, **VARIANTS[name])  # type: ignore[arg-type]
    return OnlineRecommender(config)
