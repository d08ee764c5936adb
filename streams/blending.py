"""Blend a user's list from the neighbour lists of their recent items and trending lists.

Each recent item (an *anchor*) votes for its neighbours; recent anchors weigh more.
Scores within one published list are normalised by that list's best score, so lists
of busy and quiet items count alike. Every recommendation carries its reason, the
strongest vote it got: ``b:<anchor>`` (bought with), ``v:<anchor>`` (viewed with),
``c:<category>`` (trending in the user's category) or ``t`` (trending overall).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.user_state import BOUGHT, VIEWED

ScoredList = Sequence[Sequence[Any]]  # [[item_id, score], ...] best first


@dataclass(frozen=True, slots=True)
class BlendWeights:
    """How much each source counts; ``recency`` discounts older anchors geometrically."""

    bought: float = 0.1
    viewed: float = 0.6
    category: float = 0.15
    trending: float = 0.05
    recency: float = 0.8


DEFAULT_WEIGHTS = BlendWeights()


@dataclass(frozen=True, slots=True)
class Rec:
    """One recommended item with its blended score and reason."""

    item_id: str
    score: float
    reason: str

    def to_list(self) -> list[Any]:
        """Compact wire form ``[item_id, score, reason]``."""
        return [self.item_id, round(self.score, 4), self.reason]


_PREFIX = {BOUGHT: "b:", VIEWED: "v:"}


class _Votes:
    """Accumulates scores per candidate and remembers each one's strongest reason."""

    def __init__(self) -> None:
        self.score: dict[str, float] = {}
        self.best: dict[str, tuple[float, str]] = {}

    def add(self, lst: ScoredList, weight: float, reason: str) -> None:
        if not lst or weight <= 0:
            return
        top = float(lst[0][1]) or 1.0
        for item, raw in lst:
            vote = weight * float(raw) / top
            self.score[item] = self.score.get(item, 0.0) + vote
            best = self.best.get(item)
            if best is None or vote > best[0]:
                self.best[item] = (vote, reason)


def blend(
    recent: Sequence[str],
    neighbours: Mapping[str, Mapping[str, ScoredList]],
    trending: ScoredList,
    category_trending: Mapping[str, ScoredList],
    exclude: set[str],
    available: Callable[[str], bool],
    k: int,
    weights: BlendWeights = DEFAULT_WEIGHTS,
) -> list[Rec]:
    """Rank candidates for one user; ``recent`` is most recent first.

    ``neighbours[relation][anchor]`` is the published list of ``anchor``;
    ``category_trending`` holds trending lists of the user's recent categories.
    Items in ``exclude`` or not ``available`` never appear.
    """
    votes = _Votes()
    for rank, anchor in enumerate(recent):
        a = weights.recency**rank
        for relation, w in ((BOUGHT, weights.bought), (VIEWED, weights.viewed)):
            lst = neighbours.get(relation, {}).get(anchor)
            if lst:
                votes.add(lst, a * w, _PREFIX[relation] + anchor)
    for cat, lst in category_trending.items():
        votes.add(lst, weights.category, "c:" + cat)
    votes.add(trending, weights.trending, "t")
    ranked = sorted(votes.score.items(), key=lambda kv: (-kv[1], kv[0]))
    out: list[Rec] = []
    for item, score in ranked:
        if len(out) >= k:
            break
        if item in exclude or not available(item):
            continue
        out.append(Rec(item, score, votes.best[item][1]))
    return out
