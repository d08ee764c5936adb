"""Bucketed replay: the published lists, read once per time bucket, judged like the replay.

The prequential replay (:mod:`.protocol`) asks the system before every event, which only an
in-process pipeline can answer. A deployed system is asked through Redis, and its lists are
only final once the workers have drained the log. This protocol fits both: event time is
cut into buckets aligned to multiples of ``width_ms``; after bucket ``b`` is fully applied
(and, on the real stack, drained and refreshed), every case of bucket ``b + 1`` is ranked
against the user's list as of that moment, i.e. as of the start of bucket ``b + 1``.

Cases and exclusions follow :mod:`.protocol`: a case is a positive on an item new to a user
who has an earlier interaction; its exclusion set is everything the user touched before it
(in replay order, so events earlier in the same bucket count too). Cases of the first bucket
holding interactions have no list to be judged against and are counted, not tested.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import Interaction
from streams.evaluation.metrics import hit_rate, mrr, ndcg
from streams.evaluation.protocol import MAX_K, POSITIVE, Event, clean
from streams.pipeline import LocalPipeline
from streams.settings import Settings

Ranked = list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class BucketCase:
    """One test point: ``user_id`` went on to like ``item_id`` at ``ts``."""

    index: int  # position of the event in the replayed stream
    ts: int
    user_id: str
    item_id: str
    exclude: frozenset[str]


@dataclass(slots=True)
class Bucket:
    """The events whose time falls in ``[start, start + width)``, and the cases among them."""

    start: int
    events: list[Event] = field(default_factory=list)
    cases: list[BucketCase] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """The buckets of a stream and the positives that are not cases (counted, never dropped)."""

    buckets: list[Bucket]
    n_interactions: int = 0
    n_positives: int = 0
    n_cold_user: int = 0
    n_repeat_item: int = 0

    @property
    def untested(self) -> int:
        """Cases of the first bucket: nothing was published before them."""
        return len(self.buckets[0].cases) if self.buckets else 0

    @property
    def cases(self) -> list[BucketCase]:
        """Every tested case, in stream order."""
        return [c for b in self.buckets[1:] for c in b.cases]


def plan_buckets(
    events: Sequence[Event], width_ms: int, case_types: frozenset[str] = POSITIVE
) -> Plan:
    """Cut an event-time-ordered stream into buckets and find the cases in each.

    Leading buckets without interactions (catalogue records stamped earlier) join the first
    bucket that has one, so the first tested bucket is judged against real lists.
    """
    out = Plan([])
    history: dict[str, set[str]] = defaultdict(set)
    pending: list[Event] = []
    for index, ev in enumerate(events):
        start = ev.ts - ev.ts % width_ms
        if not isinstance(ev, Interaction):
            if out.buckets and out.buckets[-1].start == start:
                out.buckets[-1].events.append(ev)
            else:
                pending.append(ev)
            continue
        if not out.buckets or out.buckets[-1].start != start:
            if out.buckets and start < out.buckets[-1].start:
                raise ValueError(f"event {index} at {ev.ts} is out of event-time order")
            out.buckets.append(Bucket(start))
        bucket = out.buckets[-1]
        bucket.events.extend(pending)
        pending.clear()
        bucket.events.append(ev)
        _count(out, bucket, index, ev, history[ev.user_id], case_types)
    if pending and out.buckets:
        out.buckets[-1].events.extend(pending)
    return out


def _count(
    out: Plan,
    bucket: Bucket,
    index: int,
    ev: Interaction,
    seen: set[str],
    case_types: frozenset[str],
) -> None:
    out.n_interactions += 1
    if ev.type in case_types:
        out.n_positives += 1
        if not seen:
            out.n_cold_user += 1
        elif ev.item_id in seen:
            out.n_repeat_item += 1
        else:
            bucket.cases.append(BucketCase(index, ev.ts, ev.user_id, ev.item_id, frozenset(seen)))
    seen.add(ev.item_id)


class ListSource(Protocol):
    """A system judged bucket by bucket: take in a bucket's events, then show users' lists."""

    def advance(self, events: Sequence[Event]) -> None:
        """Apply ``events``; when it returns, every list reflects them."""

    def lists(self, user_ids: Collection[str]) -> Mapping[str, Ranked]:
        """Each user's published list as ``(item, score)`` best first; missing = empty."""


class PipelineLists:
    """The in-process reference: what :class:`LocalPipeline` would publish, at full length.

    Scores are rounded to 4 decimals as on the wire (``Rec.to_list``), so the two sides'
    scores are comparable.
    """

    def __init__(self, settings: Settings) -> None:
        self.pipeline = LocalPipeline(settings)

    def advance(self, events: Sequence[Event]) -> None:
        """Apply the events in order."""
        self.pipeline.apply_all(events)

    def lists(self, user_ids: Collection[str]) -> dict[str, Ranked]:
        """Each user's list of ``settings.list_size`` items, as the workers publish it."""
        out: dict[str, Ranked] = {}
        for uid in user_ids:
            out[uid] = [(r.item_id, round(r.score, 4)) for r in self.pipeline.recommend(uid)]
        return out


@dataclass(frozen=True, slots=True)
class Answer:
    """What the system showed for one case: the cleaned top list and the target's rank."""

    case: BucketCase
    rank: int  # 1-based, 0 = not in the top max_k
    top: tuple[str, ...]
    raw: tuple[tuple[str, float], ...]  # the published list, before exclusion


def judge(case: BucketCase, raw: Ranked, max_k: int = MAX_K) -> Answer:
    """Rank ``case``'s target in ``raw`` after the protocol's exclusions."""
    top = clean((item for item, _ in raw), set(case.exclude), max_k)
    rank = top.index(case.item_id) + 1 if case.item_id in top else 0
    return Answer(case, rank, tuple(top), tuple(raw))


def run_buckets(
    plan: Plan,
    source: ListSource,
    max_k: int = MAX_K,
    on_bucket: Callable[[int, Bucket], None] | None = None,
) -> list[Answer]:
    """Ask ``source`` for the lists of every tested case, one bucket at a time."""
    answers: list[Answer] = []
    for n, bucket in enumerate(plan.buckets):
        if n > 0 and bucket.cases:
            lists = source.lists({c.user_id for c in bucket.cases})
            answers += [judge(c, lists.get(c.user_id, []), max_k) for c in bucket.cases]
        source.advance(bucket.events)
        if on_bucket is not None:
            on_bucket(n, bucket)
    return answers


def metrics(ranks: Sequence[int], ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """HitRate@K and NDCG@K for each K, and MRR, over the cases' ranks."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HitRate@{k}"] = hit_rate(ranks, k)
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    out["MRR"] = mrr(ranks)
    return out


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One case where the two systems differ: ranks, and the first differing position."""

    case: BucketCase
    rank_a: int
    rank_b: int
    top_a: tuple[str, ...]
    top_b: tuple[str, ...]

    @property
    def first_diff(self) -> int:
        """1-based position where the cleaned lists first differ (0 if they are equal)."""
        for i, (x, y) in enumerate(zip(self.top_a, self.top_b, strict=False)):
            if x != y:
                return i + 1
        same = len(self.top_a) == len(self.top_b)
        return 0 if same else min(len(self.top_a), len(self.top_b)) + 1


@dataclass(frozen=True, slots=True)
class Comparison:
    """Case-by-case comparison of two runs over the same plan."""

    n_cases: int
    rank_disagreements: list[Disagreement]
    list_disagreements: int  # cases whose cleaned top lists differ at all
    raw_order_disagreements: int  # cases whose published item order differs
    max_score_diff: float  # largest |score a - score b| of an item at the same position


def compare(a: Sequence[Answer], b: Sequence[Answer]) -> Comparison:
    """Compare two runs answer by answer; both must cover the same cases in the same order."""
    if [x.case for x in a] != [y.case for y in b]:
        raise ValueError("the two runs did not answer the same cases")
    ranks: list[Disagreement] = []
    lists = order = 0
    max_diff = 0.0
    for x, y in zip(a, b, strict=True):
        if x.rank != y.rank:
            ranks.append(Disagreement(x.case, x.rank, y.rank, x.top, y.top))
        lists += x.top != y.top
        order += [i for i, _ in x.raw] != [i for i, _ in y.raw]
        for (ix, sx), (iy, sy) in zip(x.raw, y.raw, strict=False):
            if ix == iy:
                max_diff = max(max_diff, abs(sx - sy))
    return Comparison(len(a), ranks, lists, order, max_diff)
