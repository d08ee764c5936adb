"""Trending and popular items, global and per category, from scores that only grow.

Both all-time counts and log-space decayed scores (:mod:`streams.decay`) only increase
as events arrive, so a bounded top-K is exact: an item that falls out can only come
back by being raised, and then it is offered again. Each item partition keeps its own
top-K (a *partial*); merging the partials of all partitions gives the global lists.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.ranked import best_first

GLOBAL = ""  # the category key of the all-categories list


@dataclass(slots=True)
class TopK:
    """The ``k`` highest monotone scores seen, by key."""

    k: int
    scores: dict[str, float] = field(default_factory=dict)
    # The weakest entry, cached: most offers lose to it and must cost O(1).
    _floor: tuple[float, str] | None = None

    def offer(self, key: str, score: float) -> bool:
        """Record ``key``'s new (never lower) score; True when the top-K changed."""
        scores = self.scores
        if key in scores:
            if scores[key] == score:
                return False
            scores[key] = score
            if self._floor is not None and self._floor[1] == key:
                self._floor = None
            return True
        if len(scores) < self.k:
            scores[key] = score
            self._floor = None
            return True
        floor = self._floor
        if floor is None:
            # the weakest in ranked() order: lowest score, then largest key
            weakest = max(scores, key=lambda x: (-scores[x], x))
            floor = self._floor = (scores[weakest], weakest)
        if (-score, key) >= (-floor[0], floor[1]):
            return False
        del scores[floor[1]]
        scores[key] = score
        self._floor = None
        return True

    def ranked(self) -> list[tuple[str, float]]:
        """Entries best first; ties broken by key so the order is deterministic."""
        return list(best_first(self.scores))


@dataclass(slots=True)
class Tops:
    """One category's lists in one item partition: its top trending and popular items.

    The workers keep one record per partition and category (not one per partition):
    a partition's lists grow with the number of categories, 200 entries each, and one
    record of them all passed the broker's 1 MB limit at about 600 categories.
    """

    trending: TopK
    popular: TopK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog."""
        return {"k": self.trending.k, "t": self.trending.ranked(), "p": self.popular.ranked()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tops:
        """Inverse of :meth:`to_dict`."""
        k = data["k"]
        return cls(TopK(k, {i: s for i, s in data["t"]}), TopK(k, {i: s for i, s in data["p"]}))


@dataclass(slots=True)
class Partial:
    """Top items of one item partition: per category and overall, trending and popular.

    ``load`` finds a category's lists that are not in memory yet (the workers read them
    from their table on first use); without it a missing category starts empty.
    """

    k: int
    trending: dict[str, TopK] = field(default_factory=dict)
    popular: dict[str, TopK] = field(default_factory=dict)
    load: Callable[[str], Tops | None] | None = field(default=None, compare=False, repr=False)

    def offer(self, item: str, category: str | None, trend: float, count: float) -> set[str]:
        """Offer one item's scores; returns the categories whose lists changed."""
        changed: set[str] = set()
        for cat in (GLOBAL, category) if category else (GLOBAL,):
            tops = self.tops(cat)
            t = tops.trending.offer(item, trend)
            p = tops.popular.offer(item, count)
            if t or p:
                changed.add(cat)
        return changed

    def tops(self, category: str) -> Tops:
        """The lists of ``category``: in memory, else loaded, else new and empty."""
        t = self.trending.get(category)
        if t is not None:
            return Tops(t, self.popular[category])
        found = self.load(category) if self.load is not None else None
        if found is None:
            found = Tops(TopK(self.k), TopK(self.k))
        self.trending[category], self.popular[category] = found.trending, found.popular
        return found

    def export(self, categories: Iterable[str]) -> dict[str, Any]:
        """The lists of ``categories`` in wire form: ``{cat: {"t": [...], "p": [...]}}``."""
        return {
            cat: {"t": self.trending[cat].ranked(), "p": self.popular[cat].ranked()}
            for cat in categories
            if cat in self.trending
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog."""
        return {"k": self.k, **{"all": self.export(self.trending)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Partial:
        """Inverse of :meth:`to_dict`."""
        part = cls(data["k"])
        for cat, lists in data["all"].items():
            tops = Tops.from_dict({"k": part.k, **lists})
            part.trending[cat], part.popular[cat] = tops.trending, tops.popular
        return part


def merge(lists: Iterable[list[tuple[str, float]]], k: int) -> list[tuple[str, float]]:
    """Merge ranked partial lists (disjoint item sets) into the global top ``k``."""
    return heapq.nsmallest(k, (e for lst in lists for e in lst), key=lambda e: (-e[1], e[0]))


def merge_category(
    partials: Mapping[int, dict[str, Any]], category: str, kind: str, k: int
) -> list[tuple[str, float]]:
    """Global top ``k`` of ``kind`` ("t" trending, "p" popular) in ``category``."""
    return merge((p[category][kind] for p in partials.values() if category in p), k)
