"""The shipped online recommender and its ablations, as evaluation models (docs/MODELS.md)."""

from __future__ import annotations

from dataclasses import replace

from streams.evaluation.datasets import DatasetSpec
from streams.models.recommender import ModelConfig, OnlineRecommender
from streams.models.rerank import RerankParams
from streams.settings import Settings

SHIPPED = ModelConfig()

# name -> how the configuration differs from the shipped one
VARIANTS: dict[str, dict[str, object]] = {
    "system": {},
    "no_ranker": {"use_ranker": False},
    "ranker_weight_1": {"ranker_weight": 1.0},
    "covisit_only": {"use_ranker": False, "sources": ("covisit",)},
    "ann_only": {"use_ranker": False, "sources": ("ann",)},
    "trending_only": {"use_ranker": False, "sources": ("trending", "category")},
    "no_vectors": {"sources": ("covisit", "trending", "category")},
    "with_diversity": {"rerank": RerankParams(category_cap=4)},
    "with_exploration": {"rerank": RerankParams(explore_slot=9, epsilon=0.1)},
}


def online(name: str, spec: DatasetSpec, settings: Settings) -> OnlineRecommender:
    """A fresh recommender in configuration ``name``."""
    config = replace(SHIPPED, positive_types=spec.case_types, **VARIANTS[name])  # type: ignore[arg-type]
    return OnlineRecommender(config)
