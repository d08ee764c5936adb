"""What a user's or an item's published list is, given state (shared by agents and eval).

The agents fetch the inputs from Redis and tables; the in-process pipeline
(:mod:`streams.pipeline`) from dicts. Both call these functions, so offline evaluation
measures exactly what the workers publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.events import CLICK, VIEW
from streams import trending
from streams.blending import (
    DEFAULT_WEIGHTS,
    BlendWeights,
    Rec,
    ScoredList,
    blend,
    popularity_factors,
)
from streams.item_state import ItemState, scored_list
from streams.models.rerank import Rule
from streams.ranked import best_first
from streams.user_state import BOUGHT, VIEWED, WEIGHT_GRID, UserState

ANCHORS = 10  # recent items whose lists feed a user's list
CATEGORIES = 3  # recent categories whose trending lists feed a user's list
VIEW_ONLY = frozenset({VIEW, CLICK})  # a recent item's strongest type, when only looked at

Catalog = Callable[[str], Mapping[str, Any] | None]


def is_available(meta: Mapping[str, Any] | None) -> bool:
    """An item may be recommended unless the catalogue says deleted or out of stock."""
    return meta is None or (bool(meta.get("in_stock", True)) and not meta.get("deleted", False))


def first_available(
    ranked: Iterable[tuple[str, float]], catalog: Catalog, n: int
) -> list[list[Any]]:
    """The first ``n`` of ``ranked`` that are available, as ``[item, score]`` rows.

    The catalogue is read only until the list is full (lists keep 50 of up to 400).
    """
    rows: list[list[Any]] = []
    if n <= 0:
        return rows
    for item, score in ranked:
        if is_available(catalog(item)):
            rows.append([item, score])
            if len(rows) == n:
                break
    return rows


@dataclass(frozen=True, slots=True)
class Plan:
    """The inputs a user's list needs: anchor items and categories, most recent first."""

    anchors: list[str]
    categories: list[str]


def plan(state: UserState, catalog: Catalog) -> Plan:
    """Which item lists and category lists to look up for this user."""
    anchors = state.recent_items()[:ANCHORS]
    cats: list[str] = []
    for item in anchors:
        meta = catalog(item)
        cat = meta.get("category") if meta else None
        if cat and cat not in cats:
            cats.append(cat)
            if len(cats) == CATEGORIES:
                break
    return Plan(anchors, cats)


@dataclass(slots=True)
class Lists:
    """Published lists found for a plan; missing ones are simply absent.

    A worker builds one for a whole batch of users, so what is derived from the lists
    (:meth:`popularity`) is computed once and kept here.
    """

    bought: dict[str, ScoredList] = field(default_factory=dict)
    viewed: dict[str, ScoredList] = field(default_factory=dict)
    trending: ScoredList = field(default_factory=list)
    category: dict[str, ScoredList] = field(default_factory=dict)
    popular: ScoredList = field(default_factory=list)  # popular:all, all-time counts
    _factors: dict[float, dict[str, float]] = field(default_factory=dict, repr=False, compare=False)

    def popularity(self, power: float) -> dict[str, float]:
        """The popularity factors of :attr:`popular` (see
        :func:`streams.blending.popularity_factors`), computed once per ``power``: fill
        the lists in before the first call."""
        done = self._factors.get(power)
        if done is None:
            done = self._factors[power] = popularity_factors(self.popular, power)
        return done


def recommend(
    state: UserState,
    p: Plan,
    lists: Lists,
    catalog: Catalog,
    k: int,
    weights: BlendWeights = DEFAULT_WEIGHTS,
    rules: Sequence[Rule] = (),
    category_cap: int = 0,
) -> list[Rec]:
    """The user's ranked list: purchased and recently seen items are never included.

    ``rules`` and ``category_cap`` are the re-rank settings (``KAPPAREC_RULES``,
    ``KAPPAREC_CATEGORY_CAP``), see :func:`streams.blending.blend`.
    """
    return blend(
        p.anchors,
        {BOUGHT: lists.bought, VIEWED: lists.viewed},
        lists.trending,
        {c: lists.category[c] for c in p.categories if c in lists.category},
        exclude=set(state.purchased) | {r.item_id for r in state.recent},
        available=lambda item: is_available(catalog(item)),
        k=k,
        weights=weights,
        rules=rules,
        category_cap=category_cap,
        catalog=catalog,
        view_only={r.item_id for r in state.recent if r.type in VIEW_ONLY},
        discount=lists.popularity(weights.popularity),
    )


def item_list(
    state: ItemState,
    relation: str,
    catalog: Catalog,
    n: int,
    half_life_s: float,
) -> list[list[Any]]:
    """An item's published neighbour list: available neighbours, best first.

    Scores are the neighbours' summed pair weights (not decayed, see
    :mod:`streams.item_state`), so a list depends neither on when it was published nor
    on which other items share its partition. The state sums them in units of 2**-24
    (``WEIGHT_GRID``); a list shows them in units of 1. ``half_life_s`` is not used by neighbour
    lists: it stays in the signature shared with the trending lists' callers.
    """
    ranked = best_first(state.scores(relation))
    return first_available(((i, round(s / WEIGHT_GRID, 4)) for i, s in ranked), catalog, n)


def trending_list(
    partials: Mapping[int, dict[str, Any]],
    category: str,
    kind: str,
    k: int,
    catalog: Catalog,
    now_ts: int,
    half_life_s: float,
) -> list[list[Any]]:
    """A published trending (``kind="t"``) or popular (``"p"``) list of available items.

    A category's list keeps only items the catalogue still files under it: an item that
    moved stays in its old category's top lists (they only grow), and a replay, which
    reads the compacted catalogue first, would never have put it there.
    """
    merged = [
        (i, s)
        for i, s in trending.merge_category(partials, category, kind, k)
        if is_available(meta := catalog(i))
        and (not category or meta is None or meta.get("category") == category)
    ]
    if kind == "p":
        return [[i, round(c, 4)] for i, c in merged]
    return scored_list(merged, now_ts, half_life_s)
