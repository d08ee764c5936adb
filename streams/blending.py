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
from typing import Any, NamedTuple

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


class Rec(NamedTuple):
    """One recommended item with its blended score and reason.

    A named tuple: a user's list makes 50 of them, and a frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field) cost an eighth of the blend.
    """

    item_id: str
    score: float
    reason: str

    def to_list(self) -> list[Any]:
        """Compact wire form ``[item_id, score, reason]``."""
        return [self.item_id, round(self.score, 4), self.reason]


_PREFIX = {BOUGHT: "b:", VIEWED: "v:"}
_NONE = float("-inf")


def _sum_votes(sources: Sequence[tuple[ScoredList, float, str]]) -> dict[str, float]:
    """Each candidate's summed votes: ``weight * score / top score of the list``."""
    scores: dict[str, float] = {}
    score_of = scores.get  # this runs ~800 times per user list
    for lst, weight, _ in sources:
        top = float(lst[0][1]) or 1.0
        for item, raw in lst:
            scores[item] = score_of(item, 0.0) + weight * raw / top
    return scores


def _reasons(sources: Sequence[tuple[ScoredList, float, str]], chosen: set[str]) -> dict[str, str]:
    """Where each chosen candidate's strongest single vote came from (the first on ties).

    Found once the list is chosen: a second pass over the votes that looks only at the
    chosen few is cheaper than tracking the strongest vote of all ~800 candidates.
    """
    best: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for lst, weight, reason in sources:
        top = float(lst[0][1]) or 1.0
        for item, raw in lst:
            if item in chosen:
                vote = weight * raw / top
                if vote > best.get(item, _NONE):
                    best[item] = vote
                    reasons[item] = reason
    return reasons


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
    sources: list[tuple[ScoredList, float, str]] = []
    for rank, anchor in enumerate(recent):
        a = weights.recency**rank
        for relation, w in ((BOUGHT, weights.bought), (VIEWED, weights.viewed)):
            lst = neighbours.get(relation, {}).get(anchor) or []
            sources.append((lst, a * w, _PREFIX[relation] + anchor))
    for cat, lst in category_trending.items():
        sources.append((lst, weights.category, "c:" + cat))
    sources.append((trending, weights.trending, "t"))
    sources = [src for src in sources if src[0] and src[1] > 0]
    scores = _sum_votes(sources)
    if rules:
        scores = {i: apply_rules(v, catalog(i), rules) for i, v in scores.items()}
        scores = {i: v for i, v in scores.items() if v > 0}
    eligible = (kv for kv in best_first(scores) if kv[0] not in exclude and available(kv[0]))
    chosen = diversify(eligible, catalog, k, category_cap)
    reasons = _reasons(sources, {item for item, _ in chosen})
    return [Rec(item, score, reasons[item]) for item, score in chosen]
