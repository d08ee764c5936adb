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

from streams.models.rerank import Rule, apply_rules, diversify
from streams.ranked import best_first
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
        self.best: dict[str, float] = {}  # the strongest single vote
        self.reason: dict[str, str] = {}  # ... and where it came from

    def add(self, lst: ScoredList, weight: float, reason: str) -> None:
        if not lst or weight <= 0:
            return
        top = float(lst[0][1]) or 1.0
        # locals: this runs ~800 times per user list, mostly for a candidate's first vote
        score, best, reasons = self.score, self.best, self.reason
        score_of = score.get
        for item, raw in lst:
            vote = weight * float(raw) / top
            held = score_of(item)
            if held is None:
                score[item] = best[item] = vote
                reasons[item] = reason
            else:
                score[item] = held + vote
                if vote > best[item]:
                    best[item] = vote
                    reasons[item] = reason


def blend(
    recent: Sequence[str],
    neighbours: Mapping[str, Mapping[str, ScoredList]],
    trending: ScoredList,
    category_trending: Mapping[str, ScoredList],
    exclude: set[str],
    available: Callable[[str], bool],
    k: int,
    weights: BlendWeights = DEFAULT_WEIGHTS,
    rules: Sequence[Rule] = (),
    category_cap: int = 0,
    catalog: Callable[[str], Mapping[str, Any] | None] = lambda item: None,
) -> list[Rec]:
    """Rank candidates for one user; ``recent`` is most recent first.

    ``neighbours[relation][anchor]`` is the published list of ``anchor``;
    ``category_trending`` holds trending lists of the user's recent categories.
    Items in ``exclude`` or not ``available`` never appear. Business ``rules`` multiply
    the blended score of the items whose ``catalog`` record they match (a factor of 0
    hides the item); ``category_cap`` > 0 allows at most that many items per category,
    filling up from the rest when too few categories are left.
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
    scores = votes.score
    if rules:
        scores = {i: apply_rules(v, catalog(i), rules) for i, v in scores.items()}
        scores = {i: v for i, v in scores.items() if v > 0}
    eligible = (kv for kv in best_first(scores) if kv[0] not in exclude and available(kv[0]))
    chosen = diversify(eligible, catalog, k, category_cap)
    return [Rec(item, score, votes.reason[item]) for item, score in chosen]
