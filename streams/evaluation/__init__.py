"""Offline prequential evaluation: replay a data set test-then-learn through the system
and reference models, report HitRate/Recall/NDCG@K, MRR and coverage (docs/EVALUATION.md)."""

from streams.evaluation.experiment import MODELS, build_models, run
from streams.evaluation.protocol import POSITIVE, Case, Recommender, Replay, replay

__all__ = ["MODELS", "POSITIVE", "Case", "Recommender", "Replay", "build_models", "replay", "run"]
