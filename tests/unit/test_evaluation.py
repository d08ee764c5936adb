"""Offline evaluation: metrics on hand-computed ranks, the replay protocol, the baselines."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from schemas.events import ADD_TO_CART, PURCHASE, VIEW, CatalogItem, Interaction
from streams.evaluation import run
from streams.evaluation.baselines import BatchALS, CoOccurrence, Popularity, RecentPopularity
from streams.evaluation.metrics import coverage, hit_rate, mrr, ndcg, recall, series
from streams.evaluation.protocol import DAY_MS, Event, clean, replay
from streams.evaluation.system import PipelineModel
from streams.settings import Settings

# --- helpers ---------------------------------------------------------------------------


def ev(n: int, user: str, item: str, kind: str = PURCHASE, ts: int | None = None) -> Interaction:
    return Interaction(f"e{n}", kind, user, item, n * 1000 if ts is None else ts)


def stream(*rows: tuple[str, str, str]) -> list[Event]:
    """Interactions one second apart from ``(user, item, type)`` rows."""
    return [ev(n, u, i, t) for n, (u, i, t) in enumerate(rows)]


class Oracle:
    """Knows every user's future positives and lists the next one: the perfect model."""

    def __init__(self, events: list[Event]) -> None:
        self.todo: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if isinstance(e, Interaction) and e.type in (PURCHASE, ADD_TO_CART):
                self.todo[e.user_id].append(e.item_id)

    def learn(self, event: Interaction) -> None:
        todo = self.todo[event.user_id]
        if event.type in (PURCHASE, ADD_TO_CART) and todo and todo[0] == event.item_id:
            todo.pop(0)

    def learn_catalog(self, item: CatalogItem) -> None:
        pass

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return self.todo[user_id][:1]


class Never:
    """Recommends an item nobody ever interacts with."""

    def learn(self, event: Interaction) -> None:
        pass

    def learn_catalog(self, item: CatalogItem) -> None:
        pass

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return ["nothing"]


class Peeker:
    """Recommends the last item it learned, and logs every call."""

    def __init__(self) -> None:
        self.learned: list[str] = []
        self.calls: list[tuple[str, str]] = []

    def learn(self, event: Interaction) -> None:
        self.calls.append(("learn", event.event_id))
        self.learned.append(event.item_id)

    def learn_catalog(self, item: CatalogItem) -> None:
        self.calls.append(("catalog", item.item_id))

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        self.calls.append(("recommend", user_id))
        return self.learned[-1:]


STREAM = stream(
    ("u1", "a", VIEW),  # u1's first interaction: no history, not a case
    ("u1", "b", PURCHASE),  # case 1
    ("u2", "b", PURCHASE),  # u2 has no history: not a case
    ("u2", "c", VIEW),
    ("u2", "c", PURCHASE),  # c already seen by u2: not a case
    ("u2", "d", ADD_TO_CART),  # case 2
    ("u1", "e", VIEW),  # a view is never a case
    ("u1", "d", PURCHASE),  # case 3
)


# --- metrics ---------------------------------------------------------------------------


def test_metrics_on_hand_computed_ranks() -> None:
    ranks = [1, 2, 10, 11, 20, 0]
    assert hit_rate(ranks, 10) == pytest.approx(3 / 6)
    assert hit_rate(ranks, 20) == pytest.approx(5 / 6)
    expected = (1 + 1 / math.log2(3) + 1 / math.log2(11)) / 6
    assert ndcg(ranks, 10) == pytest.approx(expected)
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 20) / 6)
    assert recall([1, 0, 2], [2, 1, 4]) == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert coverage({"a", "b"}, 8) == 0.25
    assert hit_rate([], 10) == 0.0


def test_series_buckets_cases_by_event_time() -> None:
    points = series([1, 0, 3, 15], [0, 5, 10, 12], 10, bucket_ms=10, origin=0)
    assert points == [(0, 0.5, 2), (10, 0.5, 2)]


# --- protocol --------------------------------------------------------------------------


def test_only_new_positives_of_users_with_history_are_cases() -> None:
    result = replay(STREAM, {"never": Never()})
    assert [(c.user_id, c.item_id) for c in result.cases] == [
        ("u1", "b"),
        ("u2", "d"),
        ("u1", "d"),
    ]
    assert (result.n_cold_user, result.n_repeat_item, result.n_positives) == (1, 1, 5)


def test_perfect_model_scores_one_and_useless_model_zero() -> None:
    result = replay(STREAM, {"oracle": Oracle(STREAM), "never": Never()})
    assert result.runs["oracle"].ranks == [1, 1, 1]
    assert hit_rate(result.runs["oracle"].ranks, 10) == 1.0
    assert result.runs["never"].ranks == [0, 0, 0]
    assert mrr(result.runs["never"].ranks) == 0.0


def test_a_model_is_asked_before_it_learns_the_event() -> None:
    # Peeker lists the last event's item: the target itself, had it learned it first.
    peeker = Peeker()
    result = replay(STREAM, {"peeker": peeker})
    assert result.runs["peeker"].ranks == [0, 0, 0]
    case_ids = {f"e{c.index}" for c in result.cases}
    for pos, (kind, arg) in enumerate(peeker.calls):
        if kind == "learn" and arg in case_ids:
            assert peeker.calls[pos - 1][0] == "recommend"


def test_answers_are_cleaned_of_excluded_and_repeated_items() -> None:
    assert clean(["a", "b", "a", "c", "d"], {"b"}, 3) == ["a", "c", "d"]
    # u1's history is {a}; a model listing "a" first loses nothing by it.
    cheat = stream(("u1", "a", VIEW), ("u1", "b", PURCHASE))

    class ListsHistory(Never):
        def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
            return ["a", "b"]

    assert replay(cheat, {"m": ListsHistory()}).runs["m"].ranks == [1]


def test_recall_targets_are_new_positives_within_the_horizon() -> None:
    events = [
        ev(0, "u", "x", VIEW, ts=0),
        ev(1, "u", "a", ts=1000),
        ev(2, "u", "x", ts=2000),  # already seen: not a target
        ev(3, "u", "b", ts=3000),
        ev(4, "u", "c", ts=DAY_MS + 1000),  # outside the day from the first case
    ]
    result = replay(events, {"never": Never()})
    assert result.cases[0].targets == frozenset({"a", "b"})
    assert result.cases[-1].targets == frozenset({"c"})


def test_k_larger_than_the_list_is_refused() -> None:
    with pytest.raises(ValueError, match="max_k"):
        replay(STREAM, {"never": Never()}, ks=(10, 30))


# --- baselines -------------------------------------------------------------------------


def test_popularity_ranks_by_count_ties_to_first_seen() -> None:
    pop = Popularity()
    for e in stream(("u", "a", VIEW), ("v", "b", VIEW), ("w", "b", PURCHASE), ("w", "c", VIEW)):
        assert isinstance(e, Interaction)
        pop.learn(e)
    assert pop.recommend("x", 3, set()) == ["b", "a", "c"]
    assert pop.recommend("x", 2, {"b"}) == ["a", "c"]
    positives = Popularity(positives_only=True)
    for e in stream(("u", "a", VIEW), ("w", "b", PURCHASE)):
        assert isinstance(e, Interaction)
        positives.learn(e)
    assert positives.recommend("x", 3, set()) == ["b"]


def test_recent_popularity_decays_with_event_time() -> None:
    m = RecentPopularity(half_life_ms=DAY_MS)
    # "a" three times at day 0 (weight 3 * 2**-10 at day 10), "b" once at day 10.
    for n in range(3):
        m.learn(ev(n, f"u{n}", "a", VIEW, ts=0))
    m.learn(ev(3, "u9", "b", VIEW, ts=10 * DAY_MS))
    assert m.recommend("x", 2, set()) == ["b", "a"]


def test_cooccurrence_sums_counts_over_recent_positives() -> None:
    events = stream(
        ("a", "1", PURCHASE),
        ("a", "2", PURCHASE),
        ("a", "9", VIEW),  # views never pair
        ("b", "1", PURCHASE),
        ("b", "3", PURCHASE),
        ("b", "2", PURCHASE),
        ("c", "3", PURCHASE),
        ("c", "1", PURCHASE),
    )
    full = CoOccurrence(window=20, pair_window=None)
    near = CoOccurrence(window=20, pair_window=1)
    for e in events:
        assert isinstance(e, Interaction)
        full.learn(e)
        near.learn(e)
    # full: C[1,2]=2 (users a, b), C[1,3]=2 (b, c), C[2,3]=1 (b). c's positives: 3, 1.
    # score(2) = C[3,2] + C[1,2] = 1 + 2 = 3.
    assert full.recommend("c", 5, {"1", "3"}) == ["2"]
    assert full.counts.get(full.index.pos["1"], full.index.pos["2"]) == 2
    # pair_window=1 pairs only consecutive positives: b's (1,3), (3,2); not (1,2).
    assert near.counts.get(near.index.pos["1"], near.index.pos["2"]) == 1
    # From "2" alone: full says 1 (C=2) before 3 (C=1).
    assert full.recommend("d", 5, set()) == []
    full.learn(ev(99, "d", "2"))
    assert full.recommend("d", 5, {"2"}) == ["1", "3"]
    # Only the last `window` positives count.
    last = CoOccurrence(window=1, pair_window=None)
    for e in events:
        assert isinstance(e, Interaction)
        last.learn(e)
    # c's last positive is 1: C[1,2]=2, C[1,3]=2 -> tie, 2 was seen before 3.
    assert last.recommend("c", 5, {"1"}) == ["2", "3"]


def test_cooccurrence_dense_and_sparse_counts_rank_alike() -> None:
    rng = random.Random(7)
    events = [
        ev(n, f"u{rng.randrange(8)}", f"i{rng.randrange(30)}", rng.choice([VIEW, PURCHASE]))
        for n in range(400)
    ]
    dense, sparse = CoOccurrence(window=5, pair_window=3), CoOccurrence(window=5, pair_window=3)
    sparse.counts.max_dense = 10  # switches to dict rows part-way through
    for e in events:
        for user in ("u0", "u3", "u7"):
            exclude = {f"i{n}" for n in range(0, 30, 4)}
            assert dense.recommend(user, 10, exclude) == sparse.recommend(user, 10, exclude)
        dense.learn(e)
        sparse.learn(e)
    assert dense.counts.dense is not None and sparse.counts.dense is None


def _als_events() -> list[Interaction]:
    rows = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    return [ev(n, u, i, ts=n * 1000) for n, (u, i) in enumerate(rows)]


def test_batch_als_trains_on_schedule_and_is_deterministic() -> None:
    def fit(fold_in: bool) -> BatchALS:
        m = BatchALS(fold_in, factors=4, iterations=5, retrain_every_ms=DAY_MS)
        for e in _als_events():
            m.learn(e)
        m.learn(ev(10, "u4", "a", VIEW, ts=DAY_MS + 5))  # crosses midnight: retrain first
        return m

    plain, again, folded = fit(False), fit(False), fit(True)
    assert plain.trainings == 1
    assert plain.recommend("u1", 3, {"a"}) == again.recommend("u1", 3, {"a"})
    # u4 arrived after training: popularity without fold-in, its own vector with it.
    assert plain.recommend("u4", 2, {"a"}) == ["b", "c"]
    assert len(folded.recommend("u4", 2, {"a"})) == 2
    assert folded._user_vector("u4") is not None
    assert plain._user_vector("u4") is None


# --- system adapter and the whole run ----------------------------------------------------


def test_pipeline_adapter_respects_exclude() -> None:
    model = PipelineModel(Settings())
    for e in stream(
        ("u1", "a", PURCHASE),
        ("u1", "b", PURCHASE),
        ("u2", "a", PURCHASE),
        ("u2", "c", PURCHASE),
        ("u3", "a", VIEW),
    ):
        assert isinstance(e, Interaction)
        model.learn(e)
    recs = model.recommend("u3", 2, {"b"})
    assert "b" not in recs and "a" not in recs
    assert len(recs) <= 2


def _movielens(root: Path) -> Path:
    ml = root / "movielens-100k" / "ml-100k"
    ml.mkdir(parents=True)
    genres = "|".join(["0"] * 19)
    (ml / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{genres}\n" for i in range(1, 9)),
        encoding="latin-1",
    )
    lines = []
    t = 880_000_000
    for u in range(1, 6):
        for j, item in enumerate((1, 2, 3, 4, 5, 6, 7, 8)[u - 1 : u + 3]):
            lines.append(f"{u}\t{item}\t{5 if j % 2 == 0 else 3}\t{t}\n")
            t += 40_000
    (ml / "u.data").write_text("".join(lines))
    return root


def test_run_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    data = _movielens(tmp_path / "data")
    out = run("movielens", data, tmp_path / "reports", settings=Settings(), progress=False)
    written = json.loads((tmp_path / "reports" / "eval-movielens.json").read_text())
    assert written["n_cases"] == out["n_cases"] > 0
    assert set(written["metrics"]) >= {"system", "popularity", "cooc", "als", "als_foldin"}
    assert 0.0 <= written["metrics"]["popularity"]["HitRate@10"] <= 1.0
    md = (tmp_path / "reports" / "eval-movielens.md").read_text()
    assert "| popularity |" in md and "NDCG@20" in md
    assert (tmp_path / "reports" / "eval-movielens.png").stat().st_size > 0


def test_run_rejects_an_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        run("netflix", tmp_path, tmp_path, settings=Settings(), progress=False)
