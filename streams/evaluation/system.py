"""The system under test: :class:`~streams.pipeline.LocalPipeline` behind the replay interface."""

from __future__ import annotations

from schemas.events import CatalogItem, Interaction
from streams.blending import BlendWeights
from streams.pipeline import LocalPipeline
from streams.settings import Settings


class PipelineModel:
    """What the workers would publish for a user, read from the in-process pipeline.

    The pipeline already leaves out purchased and recently seen items; the replay's wider
    exclusion (everything the user touched) is applied on top, asking the pipeline for
    ``k + len(exclude)`` items so that filtering cannot leave the list short.
    """

    def __init__(self, settings: Settings, weights: BlendWeights | None = None) -> None:
        self.pipeline = LocalPipeline(settings, BlendWeights() if weights is None else weights)

    def learn(self, event: Interaction) -> None:
        """Apply the interaction to user side and item side."""
        self.pipeline.apply(event)

    def learn_catalog(self, item: CatalogItem) -> None:
        """Apply the catalogue record."""
        self.pipeline.apply_catalog(item)

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """The user's published list without excluded items, cut to ``k``."""
        recs = self.pipeline.recommend(user_id, k + len(exclude))
        out = [r.item_id for r in recs if r.item_id not in exclude]
        return out[:k]
