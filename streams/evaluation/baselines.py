"""Reference models for the replay: popularity (all-time and recent), co-occurrence, batch ALS.

All are deterministic: ties go to the item seen first, ALS uses a fixed seed and one thread.

>>> pop = Popularity()
>>> for n, item in enumerate("abbccc"):
...     pop.learn(Interaction(str(n), "view", "u", item, n))
>>> pop.recommend("v", 2, exclude={"c"})
['b', 'a']
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from schemas.events import CatalogItem, Interaction
from streams.evaluation.als import BatchALS
from streams.evaluation.pairs import PairCounts
from streams.evaluation.protocol import POSITIVE
from streams.evaluation.scoring import top_items
from streams.models.space import ItemSpace, grow

__all__ = ["BatchALS", "CoOccurrence", "Popularity", "RecentPopularity"]


class Popularity:
    """All-time popularity: items ranked by how many interactions they got so far.

    ``positives_only`` counts only positive interactions (purchase, add to cart).
    """

    def __init__(self, positives_only: bool = False) -> None:
        self.positives_only = positives_only
        self.index = ItemSpace()
        self.counts = np.zeros(0, dtype=np.float64)

    def learn(self, event: Interaction) -> None:
        """Count the event's item."""
        if self.positives_only and event.type not in POSITIVE:
            return
        i = self.index.add(event.item_id)
        self.counts = grow(self.counts, i + 1)
        self.counts[i] += 1.0

    def learn_catalog(self, item: CatalogItem) -> None:
        """Catalogue metadata plays no part."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """The most counted items the user has not interacted with."""
        return top_items(self.counts, self.index.ids, k, exclude)


class RecentPopularity:
    """Popularity with exponential decay in event time: each interaction counts
    ``2 ** -(age / half_life)``.

    Scores are kept scaled by ``2 ** ((t - origin) / half_life)`` so an event costs one
    addition; the scale is folded back in before it could overflow.
    """

    def __init__(self, half_life_ms: float = 7 * 86_400_000.0) -> None:
        self.half_life_ms = half_life_ms
        self.index = ItemSpace()
        self.scores = np.zeros(0, dtype=np.float64)
        self.origin: int | None = None

    def learn(self, event: Interaction) -> None:
        """Add the event's decayed weight to its item."""
        if self.origin is None:
            self.origin = event.ts
        exponent = (event.ts - self.origin) / self.half_life_ms
        if exponent > 500:
            self.scores *= 2.0**-exponent
            self.origin, exponent = event.ts, 0.0
        i = self.index.add(event.item_id)
        self.scores = grow(self.scores, i + 1)
        self.scores[i] += 2.0**exponent

    def learn_catalog(self, item: CatalogItem) -> None:
        """Catalogue metadata plays no part."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """The items with the highest decayed count the user has not interacted with."""
        return top_items(self.scores, self.index.ids, k, exclude)


class CoOccurrence:
    """Item co-occurrence among positives, scored from the user's last ``window`` positives.

    ``C[i, j]`` counts how often ``i`` and ``j`` were positives of the same user at most
    ``pair_window`` positives apart in that user's sequence, over all users so far
    (``pair_window=None``: at any distance, i.e. the number of users who liked both).
    A user's score for item ``j`` is ``sum C[i, j]`` over their last ``window`` positive
    items ``i``. ``positive`` are the interaction types that count as positives.

    >>> m = CoOccurrence()
    >>> for n, (u, item) in enumerate([("a", 1), ("a", 2), ("b", 1), ("b", 3), ("b", 2)]):
    ...     m.learn(Interaction(str(n), "purchase", u, str(item), n))
    >>> m.learn(Interaction("5", "purchase", "c", "3", 5))
    >>> m.recommend("c", 5, exclude={"3"})
    ['1', '2']
    """

    def __init__(
        self, window: int = 20, pair_window: int | None = 20, positive: frozenset[str] = POSITIVE
    ) -> None:
        self.window = window
        self.pair_window = pair_window
        self.positive = positive
        self.index = ItemSpace()
        self.counts = PairCounts()
        self.positives: dict[str, list[int]] = defaultdict(list)
        self._liked: dict[str, set[int]] = defaultdict(set)

    def learn(self, event: Interaction) -> None:
        """Pair a new positive with the same user's earlier (recent) positives."""
        if event.type not in self.positive:
            return
        i = self.index.add(event.item_id)
        liked = self._liked[event.user_id]
        if i in liked:
            return
        liked.add(i)
        mine = self.positives[event.user_id]
        recent = mine if self.pair_window is None else mine[-self.pair_window :]
        self.counts.add(i, recent, len(self.index))
        mine.append(i)

    def learn_catalog(self, item: CatalogItem) -> None:
        """Catalogue metadata plays no part."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """Items co-occurring most with the user's recent positives; empty without any."""
        mine = self.positives.get(user_id)
        if not mine:
            return []
        return self.counts.top(mine[-self.window :], self.index.ids, k, exclude)
