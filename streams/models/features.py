"""Candidate generation and feature rows for one user (see :mod:`streams.models.candidates`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from streams.models.candidates import FEATURES, SOURCES, Candidates, top_indices
from streams.models.profile import Profile

if TYPE_CHECKING:
    from streams.models.recommender import OnlineRecommender

Array = npt.NDArray[np.float64]
TIE_BREAK = 1e-6  # popularity only orders items the main signal cannot tell apart


def build(rec: OnlineRecommender, prof: Profile, exclude: set[str]) -> Candidates:
    """Every enabled source's candidates for ``prof``, with all features."""
    n = len(rec.space)
    allowed = _allowed(rec, prof, exclude, n)
    sizes = dict(rec.config.sizes)
    enabled = set(rec.config.sources)
    anchors, weights = prof.anchors(rec.config.anchors, rec.config.recency)
    cov = rec.covisit.scores(anchors, weights, n) if "covisit" in enabled else np.zeros(n)
    trend = rec.popularity.trending(n)
    proposed: dict[int, set[str]] = {}

    def offer(source: str, items: list[int]) -> None:
        for i in items[: sizes.get(source, 0)]:
            proposed.setdefault(i, set()).add(source)

    if "covisit" in enabled:
        offer("covisit", top_indices(cov, sizes.get("covisit", 0), allowed))
    uvec = user_vector(rec, prof)
    last = rec.vectors.vector(prof.history[-1][0]) if prof.history else None
    for source, query in (("ann", uvec), ("similar", last)):
        if source in enabled and query is not None and len(rec.index):
            want = sizes.get(source, 0)
            hits = rec.index.query(query, want + int((~allowed).sum()))
            offer(source, [i for i in (rec.space.pos[it] for it, _ in hits) if allowed[i]])
    if "trending" in enabled:
        offer("trending", top_indices(trend, sizes.get("trending", 0), allowed))
    share = _category_share(rec, prof, n)
    if "category" in enabled:
        for c in _top_categories(rec, prof, 2):
            mask = allowed & (rec.popularity.category[:n] == c)
            offer("category", top_indices(trend, sizes.get("category", 0), mask))
    items = np.asarray(sorted(proposed), dtype=np.int64)
    feats = _features(rec, prof, items, cov, trend, share, uvec, last, proposed)
    base = (
        feats[:, 0] + TIE_BREAK * feats[:, FEATURES.index("trend")] if len(items) else feats[:, 0]
    )
    return Candidates(items, feats, base, proposed)


def _allowed(
    rec: OnlineRecommender, prof: Profile, exclude: set[str], n: int
) -> npt.NDArray[np.bool_]:
    allowed = ~rec.hidden[:n].copy()
    for it in exclude:
        i = rec.space.pos.get(it)
        if i is not None:
            allowed[i] = False
    for i, _, _ in prof.history:
        allowed[i] = False
    for i in prof.purchased:
        allowed[i] = False
    return allowed


def user_vector(rec: OnlineRecommender, prof: Profile) -> npt.NDArray[np.float32] | None:
    """Event-time decayed mean of the user's item vectors (unit), None without history."""
    if not prof.history:
        return None
    w = prof.decay_weights(rec.now_ts, rec.config.user_half_life_ms)
    rows = np.asarray([i for i, _, _ in prof.history], dtype=np.int64)
    v = (w[:, None] * rec.vectors.vectors(rows)).sum(axis=0)
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else None


def _category_share(rec: OnlineRecommender, prof: Profile, n: int) -> Array:
    """Per category number, its share of the user's (strength-weighted) recent history."""
    cats = rec.popularity.category
    out = np.zeros(len(rec.popularity.categories) + 1)
    total = 0.0
    for i, w, _ in prof.history:
        if i < len(cats):
            out[cats[i]] += w
            total += w
    if total > 0:
        out /= total
    out[0] = 0.0  # "unknown category" says nothing about taste
    return out


def _top_categories(rec: OnlineRecommender, prof: Profile, n: int) -> list[int]:
    share = _category_share(rec, prof, 0)
    order = [int(c) for c in np.argsort(-share, kind="stable") if share[c] > 0]
    return order[:n]


def _features(
    rec: OnlineRecommender,
    prof: Profile,
    items: npt.NDArray[np.int64],
    cov: Array,
    trend: Array,
    share: Array,
    uvec: npt.NDArray[np.float32] | None,
    last: npt.NDArray[np.float32] | None,
    proposed: dict[int, set[str]],
) -> Array:
    f = np.zeros((len(items), len(FEATURES)), dtype=np.float64)
    if not len(items):
        return f
    col = {name: j for j, name in enumerate(FEATURES)}
    c = cov[items]
    top = float(c.max())
    f[:, col["covisit"]] = c / top if top > 0 else 0.0
    f[:, col["covisit_log"]] = np.log(f[:, col["covisit"]] + 0.01) / 5.0
    order = np.argsort(-c, kind="stable")
    ranks = np.empty(len(items))
    ranks[order] = np.arange(1, len(items) + 1)
    f[:, col["covisit_rank"]] = np.where(c > 0, 1.0 / ranks, 0.0)
    vecs = rec.vectors.vectors(items)
    if uvec is not None:
        f[:, col["user_sim"]] = vecs @ uvec
    if last is not None:
        f[:, col["last_sim"]] = vecs @ last
    if prof.history:
        hist = np.asarray([i for i, _, _ in prof.history], dtype=np.int64)
        profile = rec.vectors.content[hist].sum(axis=0)
        norm = float(np.linalg.norm(profile))
        if norm > 0:
            f[:, col["content_sim"]] = rec.vectors.content[items] @ (profile / norm)
    f[:, col["trend"]] = trend[items]
    f[:, col["log_count"]] = np.log1p(rec.popularity.count[items]) / 10.0
    cats = rec.popularity.category[items]
    f[:, col["category_share"]] = share[np.minimum(cats, len(share) - 1)]
    f[:, col["history"]] = math.log1p(prof.n_events) / 5.0
    for s in SOURCES:
        j = col[f"src_{s}"]
        f[:, j] = [1.0 if s in proposed[int(i)] else 0.0 for i in items]
    return f
