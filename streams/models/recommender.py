"""The online recommender: every model of :mod:`streams.models` composed into one object.

``learn`` folds one interaction into the item side (co-visitation, popularity, item
vectors → vector-change records → HNSW index) and the user side (profile), and trains the
ranker and the exploration bandit on what the user went on to like from the list last
served to them. ``recommend`` builds candidates from every enabled source, scores them
(ranker, or the co-visitation score without it), re-ranks and explains each item.
The same object is what offline evaluation replays (``system`` in docs/MODELS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.events import ADD_TO_CART, PURCHASE, CatalogItem, Interaction
from streams.blending import Rec
from streams.catalog import merge_record
from streams.models import candidates as cand
from streams.models import features
from streams.models.covisitation import Covisitation, CovisitParams, strongest
from streams.models.index import IndexParams, VectorIndex
from streams.models.popularity import Popularity
from streams.models.profile import STRENGTH, Profile
from streams.models.ranker import Ranker, RankerParams
from streams.models.rerank import Explorer, RerankParams, apply_rules, diversify, shown
from streams.models.vectors import ItemVectors, VectorParams

DAY_MS = 86_400_000
Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Everything that changes what the recommender serves (see docs/MODELS.md)."""

    sources: tuple[str, ...] = cand.SOURCES
    use_ranker: bool = True
    # The ranker corrects the co-visitation order rather than replacing it: score =
    # log(base) + ranker_weight * ranker log-odds (weights measured, docs/MODELS.md).
    ranker_weight: float = 0.1
    positive_types: frozenset[str] = frozenset({PURCHASE, ADD_TO_CART})
    history_size: int = 50
    anchors: int = 20
    recency: float = 0.9
    user_half_life_ms: float = DAY_MS
    trend_half_life_ms: float = 7 * DAY_MS
    sizes: tuple[tuple[str, int], ...] = (
        ("covisit", 100), ("ann", 50), ("similar", 20), ("trending", 30), ("category", 20),
    )  # fmt: skip
    covisit: CovisitParams = field(default_factory=CovisitParams)
    vectors: VectorParams = field(default_factory=VectorParams)
    index: IndexParams = field(default_factory=IndexParams)
    ranker: RankerParams = field(default_factory=RankerParams)
    rerank: RerankParams = field(default_factory=RerankParams)


@dataclass(slots=True)
class Served:
    """The candidates behind the list last served to a user, to learn from what came next."""

    n_events: int
    found: cand.Candidates
    exposed: list[int] = field(default_factory=list)


class OnlineRecommender:
    """Candidates → ranker → re-rank, all learned online from the event stream."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        self.config = config
        self.vectors = ItemVectors(config.vectors)
        self.space = self.vectors.space
        self.covisit = Covisitation(config.covisit)
        self.popularity = Popularity(config.trend_half_life_ms)
        self.index = VectorIndex(config.index)
        self.ranker = Ranker(config.ranker)
        self.explorer = Explorer(config.sources, config.rerank.epsilon, config.rerank.seed)
        self.catalog: dict[str, dict[str, Any]] = {}
        self.hidden = np.zeros(0, dtype=bool)
        self.profiles: dict[str, Profile] = {}
        self.served: dict[str, Served] = {}
        self.now_ts = 0

    # --- learning -----------------------------------------------------------------------

    def learn_catalog(self, item: CatalogItem) -> None:
        """Record a catalogue record: content vector, category, visibility."""
        meta = merge_record(self.catalog.get(item.item_id), item)
        if meta is None:
            return
        self.catalog[item.item_id] = meta
        i = self._add(item.item_id)
        self.vectors.set_content(item.item_id, meta)
        self.popularity.set_category(i, meta.get("category"))
        self.hidden[i] = not shown(meta)
        self._sync_index(item.ts)

    def learn(self, event: Interaction) -> None:
        """Fold one interaction into every model."""
        cfg = self.config
        self.now_ts = max(self.now_ts, event.ts)
        i = self._add(event.item_id)
        strength = STRENGTH.get(event.type, 0.0)
        self.popularity.add(i, 1.0, event.ts)
        prof = self.profiles.setdefault(event.user_id, Profile())
        if event.type in cfg.positive_types:
            self._feedback(event.user_id, i, prof)
        if strength > 0:
            history = prof.pairs()
            self.covisit.add(i, strength, history)
            recent = history[-cfg.covisit.window :]
            self.vectors.learn(i, [j for j, _ in recent], [w * strength for _, w in recent])
        prof.add(i, strength, event.ts, event.type == PURCHASE, cfg.history_size)
        self._sync_index(event.ts)

    def _add(self, item_id: str) -> int:
        i = self.vectors.add(item_id)
        if i >= len(self.hidden):
            self.hidden = np.concatenate([self.hidden, np.zeros(i + 1 - len(self.hidden), bool)])
        return i

    def _sync_index(self, ts: int) -> None:
        if {"ann", "similar"} & set(self.config.sources):
            self.index.apply(self.vectors.drain())
            self.index.maybe_flush(ts)

    def _feedback(self, user_id: str, item: int, prof: Profile) -> None:
        """Train ranker and bandit on the list served before this positive."""
        self.explorer.feedback(user_id, self.space.ids[item])
        served = self.served.pop(user_id, None)
        if served is None or served.n_events != prof.n_events or not self.config.use_ranker:
            return
        rows = np.flatnonzero(served.found.items == item)
        if len(rows):
            self.ranker.learn(served.found.features, int(rows[0]), served.exposed)

    # --- serving ------------------------------------------------------------------------

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """Item ids only (the offline evaluation's interface)."""
        return [r.item_id for r in self.recommend_recs(user_id, k, exclude)]

    def recommend_recs(self, user_id: str, k: int, exclude: set[str] | None = None) -> list[Rec]:
        """The user's list with scores and reasons; never an excluded or hidden item."""
        prof = self.profiles.get(user_id) or Profile()
        found = self._candidates(prof, exclude or set())
        if len(found.items) == 0:
            return []
        cfg_w = self.config.ranker_weight
        if self.config.use_ranker:
            score = np.log(found.base + 1e-9) + cfg_w * self.ranker.scores(found.features)
        else:
            score = found.base
        order = np.lexsort((found.items, -found.base, -score))
        ids = self.space.ids
        rules = self.config.rerank.rules
        ranked = [(ids[int(found.items[r])], float(score[r])) for r in order]
        if rules:
            ranked = sorted(
                ((it, apply_rules(s, self.catalog.get(it), rules)) for it, s in ranked),
                key=lambda e: -e[1],
            )
            ranked = [e for e in ranked if e[1] != 0.0]
        top = diversify(ranked, self.catalog.get, k, self.config.rerank.category_cap)
        top = self._explore(user_id, top, found, k)
        row_of = {ids[int(it)]: r for r, it in enumerate(found.items.tolist())}
        self.served[user_id] = Served(prof.n_events, found, [row_of[it] for it, _ in top])
        return [Rec(it, s, self._reason(prof, found, row_of[it])) for it, s in top]

    def _explore(
        self, user_id: str, top: list[tuple[str, float]], found: cand.Candidates, k: int
    ) -> list[tuple[str, float]]:
        slot = self.config.rerank.explore_slot
        if slot is None or slot >= min(k, len(top)):
            return top
        listed = {it for it, _ in top}
        ids = self.space.ids
        best: dict[str, str] = {}
        for r in np.argsort(-found.base, kind="stable").tolist():
            item = ids[int(found.items[r])]
            if item in listed:
                continue
            for s in found.sources.get(int(found.items[r]), ()):
                best.setdefault(s, item)
        source = self.explorer.pick(list(best))
        if source is None:
            return top
        self.explorer.served(user_id, best[source], source)
        out = list(top)
        out[slot] = (best[source], out[slot][1])
        return out

    def _reason(self, prof: Profile, found: cand.Candidates, row: int) -> str:
        item = int(found.items[row])
        ids = self.space.ids
        if found.column("covisit")[row] > 0:
            anchors, weights = prof.anchors(self.config.anchors, self.config.recency)
            a = strongest(self.covisit, anchors, weights, item)
            if a >= 0:
                strong = any(i == a and w >= 1.0 for i, w, _ in prof.history)
                return ("b:" if strong else "v:") + ids[a]
        srcs = found.sources.get(item, set())
        if ("similar" in srcs or "ann" in srcs) and prof.history:
            return "s:" + ids[prof.history[-1][0]]
        if "category" in srcs:
            meta = self.catalog.get(ids[item])
            if meta and meta.get("category"):
                return "c:" + str(meta["category"])
        return "t"

    def _candidates(self, prof: Profile, exclude: set[str]) -> cand.Candidates:
        return features.build(self, prof, exclude)
