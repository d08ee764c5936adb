"""Prequential (test-then-learn) replay: ask every model before it learns each event.

Events are replayed in the order given (event-time order, ties in source order). A
*case* is a positive interaction (``purchase`` or ``add_to_cart``) by a user who has at
least one earlier interaction in the replay, on an item that user has not interacted
with before. Before the event is applied, every model is asked for its top ``max_k``
items for that user with all of the user's earlier items excluded; the 1-based rank of
the target item is recorded (0 = not in the list). Then every model learns the event.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import ADD_TO_CART, PURCHASE, CatalogItem, Interaction

POSITIVE = frozenset({PURCHASE, ADD_TO_CART})
MAX_K = 20
DAY_MS = 86_400_000

Event = CatalogItem | Interaction


class Recommender(Protocol):
    """What the replay needs from a model: learn events, rank items for a user."""

    def learn(self, event: Interaction) -> None:
        """Update the model with one interaction (after it was tested on it)."""

    def learn_catalog(self, item: CatalogItem) -> None:
        """Record an item's catalogue metadata."""

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """At most ``k`` item ids, best first, none of them in ``exclude``.

        ``exclude`` is the replay's live history of the user: read it, never keep or change it.
        """


@dataclass(frozen=True, slots=True)
class Case:
    """One test point: ``user_id`` went on to like ``item_id`` at ``ts``.

    ``targets`` are the items of the user's positives in ``[ts, ts + horizon)`` that were
    not in the user's history at ``ts`` (always including ``item_id``); Recall@K uses them.
    """

    index: int
    ts: int
    user_id: str
    item_id: str
    targets: frozenset[str]


@dataclass(slots=True)
class ModelRun:
    """What one model answered over all cases, in case order."""

    ranks: list[int] = field(default_factory=list)
    target_hits: dict[int, list[int]] = field(default_factory=dict)
    recommended: dict[int, set[str]] = field(default_factory=dict)
    learn_s: float = 0.0
    recommend_s: float = 0.0


@dataclass(slots=True)
class Replay:
    """The outcome of a replay: the cases and every model's answers."""

    cases: list[Case]
    runs: dict[str, ModelRun]
    n_interactions: int = 0
    n_positives: int = 0
    n_cold_user: int = 0
    n_repeat_item: int = 0
    items: set[str] = field(default_factory=set)


def _future_positives(
    events: Sequence[Event], case_types: frozenset[str]
) -> dict[str, list[tuple[int, str]]]:
    """Each user's positives as ``(ts, item)`` in replay order (for Recall@K targets)."""
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, Interaction) and ev.type in case_types:
            out[ev.user_id].append((ev.ts, ev.item_id))
    return out


def _targets(
    ahead: list[tuple[int, str]], start: int, ts: int, horizon_ms: int, seen: set[str]
) -> frozenset[str]:
    out = set()
    for j in range(start, len(ahead)):
        t, item = ahead[j]
        if t >= ts + horizon_ms:
            break
        if item not in seen:
            out.add(item)
    return frozenset(out)


def clean(recs: Iterable[str], exclude: set[str], k: int) -> list[str]:
    """Enforce the protocol on a model's answer: no excluded items, no repeats, at most k."""
    out: list[str] = []
    for item in recs:
        if item not in exclude and item not in out:
            out.append(item)
            if len(out) == k:
                break
    return out


def _test(
    run: ModelRun, model: Recommender, case: Case, exclude: set[str], max_k: int, ks: Sequence[int]
) -> None:
    t0 = time.perf_counter()
    recs = clean(model.recommend(case.user_id, max_k, exclude), exclude, max_k)
    run.recommend_s += time.perf_counter() - t0
    run.ranks.append(recs.index(case.item_id) + 1 if case.item_id in recs else 0)
    for k in ks:
        top = recs[:k]
        run.target_hits.setdefault(k, []).append(sum(1 for i in top if i in case.targets))
        run.recommended.setdefault(k, set()).update(top)


def replay(
    events: Sequence[Event],
    models: Mapping[str, Recommender],
    ks: Sequence[int] = (10, 20),
    max_k: int = MAX_K,
    horizon_ms: int = DAY_MS,
    tick: Callable[[], None] | None = None,
    case_types: frozenset[str] = POSITIVE,
) -> Replay:
    """Test every model on every case, then let it learn the event; ``tick`` per event.

    ``case_types`` are the interaction types that count as positives (cases and targets).
    """
    if max(ks) > max_k:
        raise ValueError(f"K={max(ks)} is larger than the list length max_k={max_k}")
    run = _Run(models, _future_positives(events, case_types), ks, max_k, horizon_ms, case_types)
    for index, ev in enumerate(events):
        if isinstance(ev, CatalogItem):
            run.out.items.add(ev.item_id)
            for model in models.values():
                model.learn_catalog(ev)
        else:
            run.step(index, ev)
        if tick is not None:
            tick()
    return run.out


class _Run:
    """The replay's state: each user's history and position in their own positives."""

    def __init__(
        self,
        models: Mapping[str, Recommender],
        ahead: dict[str, list[tuple[int, str]]],
        ks: Sequence[int],
        max_k: int,
        horizon_ms: int,
        case_types: frozenset[str],
    ) -> None:
        self.models = models
        self.ahead = ahead
        self.ks = ks
        self.max_k = max_k
        self.horizon_ms = horizon_ms
        self.case_types = case_types
        self.cursor: dict[str, int] = defaultdict(int)
        self.history: dict[str, set[str]] = defaultdict(set)
        self.out = Replay([], {name: ModelRun() for name in models})

    def step(self, index: int, ev: Interaction) -> None:
        """Test on ``ev`` if it is a case, then let every model learn it."""
        out = self.out
        out.n_interactions += 1
        out.items.add(ev.item_id)
        seen = self.history[ev.user_id]
        if ev.type in self.case_types:
            out.n_positives += 1
            pos = self.cursor[ev.user_id]
            self.cursor[ev.user_id] = pos + 1
            if not seen:
                out.n_cold_user += 1
            elif ev.item_id in seen:
                out.n_repeat_item += 1
            else:
                targets = _targets(self.ahead[ev.user_id], pos, ev.ts, self.horizon_ms, seen)
                case = Case(index, ev.ts, ev.user_id, ev.item_id, targets)
                out.cases.append(case)
                for name, model in self.models.items():
                    _test(out.runs[name], model, case, seen, self.max_k, self.ks)
        for name, model in self.models.items():
            t0 = time.perf_counter()
            model.learn(ev)
            out.runs[name].learn_s += time.perf_counter() - t0
        seen.add(ev.item_id)
