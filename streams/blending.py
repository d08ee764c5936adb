"""Blend a user's list from the neighbour lists of their recent items and trending lists.

Each recent item (an *anchor*) votes for its neighbours; recent anchors weigh more.
Scores within one published list are normalised by that list's best score, so lists
of busy and quiet items count alike. Every recommendation carries its reason, the
strongest vote it got: ``b:<anchor>`` (bought with), ``v:<anchor>`` (viewed with),
``c:<category>`` (trending in the user's category) or ``t`` (trending overall).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.models.rerank import Rule, apply_rules, diversify
from streams.ranked import best_first
from streams.user_state import BOUGHT, VIEWED

ScoredList = Sequence[Sequence[Any]]  # [[item_id, score], ...] best first
Source = tuple[ScoredList, float, str]  # a list, the scale of its scores, its reason


@dataclass(frozen=True, slots=True)
class BlendWeights:
    """How much each source counts; ``recency`` discounts older anchors geometrically."""

    bought: float = 0.1
    viewed: float = 0.6
    category: float = 0.15
    trending: float = 0.05
    recency: float = 0.8
    # Anchors whose strongest interaction in the user's recent history is a view or a
    # click vote this much (a removal from the cart resets an item's type: an item carted,
    # removed, then viewed counts as viewed).
    view_only: float = 0.5
    # Each neighbour's score is divided by its all-time count ** popularity (the count
    # from ``popular:all``; items outside it get its last count) before a list is scaled
    # by its best score, so the most popular items do not top every list.
    popularity: float = 0.25


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


def _sum_votes(sources: Sequence[Source], scores: dict[str, float]) -> dict[str, float]:
    """Add each candidate's votes, ``scale * score``, to ``scores``."""
    score_of = scores.get  # this runs ~1,500 times per user list
    for lst, scale, _ in sources:
        for item, raw in lst:
            scores[item] = score_of(item, 0.0) + scale * raw
    return scores


def _reasons(
    sources: Sequence[Source], discounted: int, factors: Mapping[str, float], chosen: set[str]
) -> dict[str, str]:
    """Where each chosen candidate's strongest single vote came from (the first on ties);
    the votes of the first ``discounted`` sources count with the items' ``factors``.

    Found once the list is chosen: a second pass over the votes that looks only at the
    chosen few is cheaper than tracking the strongest vote of all candidates.
    """
    best: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for n, (lst, scale, reason) in enumerate(sources):
        for item, raw in lst:
            if item in chosen:
                vote = scale * raw * (factors.get(item, 1.0) if n < discounted else 1.0)
                if vote > best.get(item, _NONE):
                    best[item] = vote
                    reasons[item] = reason
    return reasons


def _source(lst: ScoredList, weight: float, reason: str) -> Source:
    """A published list voting with ``weight``: its scores scaled by its best one."""
    return lst, weight / (float(lst[0][1]) or 1.0), reason


def _top(lst: ScoredList, factors: Mapping[str, float]) -> float:
    """The best score of ``lst`` once each is multiplied by its item's factor (1 if none).

    ``lst`` is best first and no factor exceeds 1, so the best is at or before the first
    item without a factor: only the entries up to it are looked at.
    """
    top = 0.0
    for item, raw in lst:
        f = factors.get(item)
        top = max(top, float(raw) * (1.0 if f is None else f))
        if f is None:
            break
    return top or 1.0


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
    view_only: Collection[str] = (),
    discount: Mapping[str, float] | None = None,
) -> list[Rec]:
    """Rank candidates for one user; ``recent`` is most recent first.

    ``neighbours[relation][anchor]`` is the published list of ``anchor``;
    ``category_trending`` holds trending lists of the user's recent categories.
    Anchors in ``view_only`` (only viewed or clicked) vote with ``weights.view_only``.
    ``discount`` maps items to a factor at most 1 (:func:`popularity_factors`) that
    multiplies each of their scores in the neighbour lists before a list is scaled by
    its best score. Items in ``exclude`` or not ``available`` never appear. Business
    ``rules`` multiply the blended score of the items whose ``catalog`` record they match
    (a factor of 0 hides the item); ``category_cap`` > 0 allows at most that many items
    per category, filling up from the rest when too few categories are left.
    """
    factors = discount or {}
    sources: list[Source] = []
    for rank, anchor in enumerate(recent):
        a = weights.recency**rank * (weights.view_only if anchor in view_only else 1.0)
        for relation, w in ((BOUGHT, weights.bought), (VIEWED, weights.viewed)):
            lst = neighbours.get(relation, {}).get(anchor)
            if lst and a * w > 0:
                sources.append((lst, a * w / _top(lst, factors), _PREFIX[relation] + anchor))
    # An item's factor multiplies every neighbour vote it gets, so it is applied once to
    # their sum (to the ~100 items that have one) rather than to each vote.
    scores = _sum_votes(sources, {})
    for item, f in factors.items():
        if item in scores:
            scores[item] *= f
    discounted = len(sources)
    for cat, lst in category_trending.items():
        if lst and weights.category > 0:
            sources.append(_source(lst, weights.category, "c:" + cat))
    if trending and weights.trending > 0:
        sources.append(_source(trending, weights.trending, "t"))
    scores = _sum_votes(sources[discounted:], scores)
    if rules:
        scores = {i: apply_rules(v, catalog(i), rules) for i, v in scores.items()}
        scores = {i: v for i, v in scores.items() if v > 0}
    eligible = (kv for kv in best_first(scores) if kv[0] not in exclude and available(kv[0]))
    chosen = diversify(eligible, catalog, k, category_cap)
    reasons = _reasons(sources, discounted, factors, {item for item, _ in chosen})
    return [Rec(item, score, reasons[item]) for item, score in chosen]


def popularity_factors(popular: ScoredList, power: float) -> dict[str, float]:
    """``(count / last) ** -power`` per item of ``popular`` (all-time counts, best first;
    ``last`` is its last count): at most 1, and 1, left out, for every other item.

    Dividing every score by ``count ** power`` with the last count for items outside the
    list would give the same blend: a factor common to all items cancels when a list is
    scaled by its best score.
    """
    if power <= 0 or not popular:
        return {}
    last = max(float(popular[-1][1]), 1e-9)
    factors = {item: (max(float(count), 1e-9) / last) ** -power for item, count in popular}
    return {item: f for item, f in factors.items() if f < 1.0}
