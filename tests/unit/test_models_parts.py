"""Parts of the online models: content vectors, co-visitation, ranker, re-ranking, reasons,
cold start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from schemas.events import PURCHASE, VIEW, CatalogItem, Interaction
from streams.models.candidates import FEATURES
from streams.models.content import ContentEncoder, tokens
from streams.models.covisitation import Covisitation, CovisitParams
from streams.models.ranker import Ranker, RankerParams
from streams.models.recommender import ModelConfig, OnlineRecommender
from streams.models.rerank import Explorer, Rule, apply_rules, diversify


def test_tokens_cover_category_path_brand_price_title() -> None:
    toks = dict(
        tokens({"category": "a.b", "brand": "Acme", "price": 100.0, "title": "The Big Heat (1953)"})
    )
    assert {
        "cat:a",
        "cat:a.b",
        "brand:acme",
        "price:6",
        "word:big",
        "word:heat",
        "year:1953",
    } <= set(toks)
    assert "word:the" not in toks
    assert toks["cat:a.b"] > toks["cat:a"]


def test_content_vectors_are_deterministic_and_similar_for_shared_tokens() -> None:
    a, b = ContentEncoder(16, seed=3), ContentEncoder(16, seed=3)
    meta = {"category": "x.y", "brand": "z"}
    assert np.array_equal(a.encode(meta), b.encode(meta))
    near = a.encode({"category": "x.y", "brand": "w"})
    far = a.encode({"category": "q.r", "brand": "w2"})
    assert a.encode(meta) @ near > a.encode(meta) @ far
    assert not a.encode({}).any()


def test_the_token_cache_is_bounded_and_vectors_do_not_depend_on_it() -> None:
    small, fresh = ContentEncoder(16, seed=3, cache_size=10), ContentEncoder(16, seed=3)
    titles = [{"title": f"item word{i} other{i}", "category": "x.y"} for i in range(200)]
    for meta in titles:
        small.encode(meta)
    assert len(small._cache) == 10  # every title brought new words
    for meta in titles[:20]:  # evicted long ago: the same vectors again
        assert np.array_equal(small.encode(meta), fresh.encode(meta))


def test_covisitation_weights_by_distance_and_normalises_popularity() -> None:
    cov = Covisitation(CovisitParams(window=3, distance_power=1.0, norm=0.0))
    cov.add(2, 1.0, [(0, 1.0), (1, 1.0)])  # 1 is adjacent to 2, 0 two steps away
    s = cov.scores([2], [1.0], 3)
    assert s[1] == 2 * s[0] > 0
    assert s[2] == 0  # never itself


def test_covisitation_dense_and_sparse_score_alike() -> None:
    dense = Covisitation(CovisitParams(max_dense=100))
    sparse = Covisitation(CovisitParams(max_dense=1))
    for cov in (dense, sparse):
        hist: list[tuple[int, float]] = []
        for i in [0, 3, 1, 4, 0, 2, 3]:
            cov.add(i, 1.0, hist)
            hist.append((i, 1.0))
    assert sparse.dense is None
    assert np.allclose(dense.scores([0, 3], [1.0, 0.5], 5), sparse.scores([0, 3], [1.0, 0.5], 5))


def test_ranker_learns_which_feature_predicts_the_liked_item() -> None:
    ranker = Ranker(RankerParams(seed=1))
    rng = np.random.default_rng(0)
    j = FEATURES.index("user_sim")
    for _ in range(300):
        f = rng.random((20, len(FEATURES)))
        ranker.learn(f, int(np.argmax(f[:, j])), list(range(10)))
    f = rng.random((20, len(FEATURES)))
    assert int(np.argmax(ranker.scores(f))) == int(np.argmax(f[:, j]))


def test_rules_boost_bury_and_hide() -> None:
    rules = (Rule(2.0, category="a"), Rule(0.5, brand="b"), Rule(0.0, category="x.y"))
    assert apply_rules(1.0, {"category": "a.c", "brand": "b"}, rules) == 1.0
    assert apply_rules(1.0, {"category": "ab"}, rules) == 1.0  # a prefix of a path, not of text
    assert apply_rules(1.0, {"category": "x.y"}, rules) == 0.0


def test_diversity_caps_places_per_category_and_refills() -> None:
    cat = {"a": "c1", "b": "c1", "c": "c1", "d": "c2"}
    ranked = [(i, 1.0) for i in "abcd"]
    got = diversify(ranked, lambda i: {"category": cat[i]}, 3, cap=2)
    assert [i for i, _ in got] == ["a", "b", "d"]
    got = diversify(ranked[:3], lambda i: {"category": cat[i]}, 3, cap=1)
    assert [i for i, _ in got] == ["a", "b", "c"]  # nothing else to show: refilled


def test_explorer_rewards_the_source_whose_item_was_liked() -> None:
    ex = Explorer(("s1", "s2"), epsilon=0.0, seed=0)
    for _ in range(5):
        ex.served("u", "good", "s2")
        ex.feedback("u", "good")
        ex.served("u", "bad", "s1")
        ex.feedback("u", "other")
    assert ex.pick(["s1", "s2"]) == "s2"


def stream() -> list[CatalogItem | Interaction]:
    out: list[CatalogItem | Interaction] = [
        CatalogItem(f"i{j}", 0, title=f"Film {j}", category="movies.a" if j < 5 else "movies.b")
        for j in range(10)
    ]
    n = 0
    for u in range(20):
        for j in [0, 1, 2] if u % 2 else [5, 6, 7]:
            n += 1
            out.append(
                Interaction(f"e{n}", PURCHASE if j != 2 else VIEW, f"u{u}", f"i{j}", n * 1000)
            )
    return out


def fed(config: ModelConfig | None = None) -> OnlineRecommender:
    rec = OnlineRecommender(config or ModelConfig())
    for ev in stream():
        if isinstance(ev, Interaction):
            rec.learn(ev)
        else:
            rec.learn_catalog(ev)
    return rec


def test_every_item_carries_a_reason() -> None:
    rec = fed()
    rec.learn(Interaction("x", PURCHASE, "new", "i0", 10**6))
    recs = rec.recommend_recs("new", 5)
    assert recs[0].item_id == "i1" and recs[0].reason == "b:i0"  # bought with i0
    rec.learn(Interaction("y", VIEW, "viewer", "i2", 10**6))
    assert rec.recommend_recs("viewer", 5)[0].reason in ("v:i2", "s:i2")
    assert all(r.reason for r in rec.recommend_recs("viewer", 10))
    assert {r.reason for r in rec.recommend_recs("cold", 10)} <= {"t"}  # trending


def test_new_item_is_recommendable_from_its_catalogue_record() -> None:
    rec = fed(replace(ModelConfig(), sources=("similar",), use_ranker=False))
    rec.learn_catalog(CatalogItem("fresh", 10**6, title="Film 0 sequel", category="movies.a"))
    rec.learn(Interaction("z", PURCHASE, "new", "i0", 10**6 + 1))
    rec.index.flush()
    recs = rec.recommend_recs("new", 10)
    assert "fresh" in [r.item_id for r in recs]
    assert next(r.reason for r in recs if r.item_id == "fresh") == "s:i0"


def test_deleted_and_out_of_stock_items_are_never_served() -> None:
    rec = fed()
    rec.learn_catalog(CatalogItem("i1", 1, category="movies.a", deleted=True))
    rec.learn_catalog(CatalogItem("i6", 1, category="movies.b", in_stock=False))
    rec.learn(Interaction("x", PURCHASE, "new", "i0", 10**6))
    rec.index.flush()
    items = {r.item_id for r in rec.recommend_recs("new", 10)}
    assert items and not items & {"i1", "i6", "i0"}
    assert "i1" not in rec.index


def test_business_rule_buries_a_category() -> None:
    bury = replace(ModelConfig().rerank, rules=(Rule(0.0, category="movies.a"),))
    rec = fed(replace(ModelConfig(), rerank=bury))
    rec.learn(Interaction("x", PURCHASE, "new", "i0", 10**6))
    cats = {rec.catalog[r.item_id]["category"] for r in rec.recommend_recs("new", 10)}
    assert cats == {"movies.b"}
