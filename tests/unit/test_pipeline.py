"""The whole dataflow in one process: events in, published lists out (list in, list out)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from schemas.events import CatalogItem, Interaction
from streams.item_state import entry_bytes
from streams.pipeline import LocalPipeline
from streams.recommend import item_list
from streams.settings import Settings, load_settings
from streams.user_state import BOUGHT, VIEWED

T0 = 1_700_000_000_000
SEC = 1000
# A half-life of ~3 years: over the seconds this scenario spans decay is below 1e-7, so the
# published weights are the plain sums of the hand computation below.
SLOW = 1e8

CATALOG = [
    CatalogItem("P1", T0 - 10 * SEC, "Phone 1", "phones", price=500.0),
    CatalogItem("P2", T0 - 10 * SEC, "Phone 2", "phones", price=600.0),
    CatalogItem("C1", T0 - 10 * SEC, "Case 1", "accessories", price=10.0),
    CatalogItem("C2", T0 - 10 * SEC, "Case 2", "accessories", price=12.0, in_stock=False),
    CatalogItem("C3", T0 - 10 * SEC, "Case 3", "accessories", price=15.0),
    CatalogItem("H1", T0 - 10 * SEC, "Headphones", "audio", price=80.0),
]


def _ev(n: int, type_: str, user: str, item: str) -> Interaction:
    return Interaction(f"e{n}", type_, user, item, T0 + n * SEC)


EVENTS = [
    _ev(0, "view", "u2", "P1"),
    _ev(1, "view", "u2", "C2"),  # out of stock: may anchor, must never be recommended
    _ev(2, "view", "u2", "C3"),
    _ev(3, "purchase", "u2", "C3"),
    _ev(4, "click", "u2", "H1"),
    _ev(5, "view", "u1", "P1"),
    _ev(6, "view", "u1", "P2"),
    _ev(7, "add_to_cart", "u1", "C1"),
]
ITEMS = ["P1", "P2", "C1", "C2", "C3", "H1"]


def _settings(**kw: Any) -> Settings:
    return load_settings(env={}, **kw)


def _run(partitions: int, events: list[Any] | None = None, **kw: Any) -> LocalPipeline:
    pipe = LocalPipeline(_settings(partitions=partitions, **kw))
    pipe.apply_all([*CATALOG, *EVENTS] if events is None else events)
    return pipe


def _recs(pipe: LocalPipeline, user: str) -> list[tuple[str, Any, str]]:
    return [(r.item_id, r.score, r.reason) for r in pipe.recommend(user)]


@pytest.fixture(params=[1, 4], ids=["1-partition", "4-partitions"])
def pipe(request: pytest.FixtureRequest) -> LocalPipeline:
    return _run(request.param, half_life_s=SLOW)


# Deltas by hand (see test_user_state for the weights; r2 = 2 ** 0.5, r3 = 3 ** 0.5):
#   e1 view C2:      viewed P1<->C2 0.25
#   e2 view C3:      viewed C2<->C3 0.25, P1<->C3 0.25/r2
#   e3 purchase C3:  viewed C2<->C3 0.5, P1<->C3 0.5/r2; bought P1+=C3 (1.0 * anchor 0.5),
#                    C2+=C3 (0.5)
#   e4 click H1:     viewed C3<->H1 0.5, C2<->H1 0.25/r2, P1<->H1 0.25/r3
#   e6 view P2:      viewed P1<->P2 0.25
#   e7 cart C1:      viewed P2<->C1 0.5, P1<->C1 0.5/r2; bought P1+=C1 (0.5 * 0.5 = 0.25),
#                    P2+=C1 (0.25)
# Scores are plain sums (no decay), rounded to 4 decimals; C2 is filtered out.


def test_also_viewed_lists(pipe: LocalPipeline) -> None:
    # P1: C3 0.25/r2 + 0.5/r2 = 0.5303, C1 0.5/r2 = 0.3536, P2 0.25, H1 0.25/r3 = 0.1443
    assert pipe.item_list(VIEWED, "P1") == [
        ["C3", 0.5303],
        ["C1", 0.3536],
        ["P2", 0.25],
        ["H1", 0.1443],
    ]
    assert pipe.item_list(VIEWED, "C2") == [["C3", 0.75], ["P1", 0.25], ["H1", 0.1768]]
    assert pipe.item_list(VIEWED, "C3") == [["P1", 0.5303], ["H1", 0.5]]  # C2 (0.75) hidden
    assert pipe.item_list(VIEWED, "H1") == [["C3", 0.5], ["P1", 0.1443]]
    assert pipe.item_list(VIEWED, "P2") == [["C1", 0.5], ["P1", 0.25]]
    assert pipe.item_list(VIEWED, "C1") == [["P2", 0.5], ["P1", 0.3536]]


def test_also_bought_lists(pipe: LocalPipeline) -> None:
    assert pipe.item_list(BOUGHT, "P1") == [["C3", 0.5], ["C1", 0.25]]
    assert pipe.item_list(BOUGHT, "C2") == [["C3", 0.5]]
    assert pipe.item_list(BOUGHT, "P2") == [["C1", 0.25]]
    for item in ("C1", "C3", "H1"):
        assert pipe.item_list(BOUGHT, item) == []


def test_trending_and_popular_lists(pipe: LocalPipeline) -> None:
    # interest: view/click 1, cart 3, purchase 5.  P1 = 1 + 1, C3 = 1 + 5, C2 hidden
    assert pipe.trending() == [["C3", 6.0], ["C1", 3.0], ["P1", 2.0], ["P2", 1.0], ["H1", 1.0]]
    assert pipe.trending(kind="p") == [
        ["C3", 6.0],
        ["C1", 3.0],
        ["P1", 2.0],
        ["H1", 1.0],
        ["P2", 1.0],  # ties by id
    ]
    assert pipe.trending("phones") == [["P1", 2.0], ["P2", 1.0]]
    assert pipe.trending("accessories") == [["C3", 6.0], ["C1", 3.0]]
    assert pipe.trending("audio") == [["H1", 1.0]]
    assert pipe.trending("toys") == []


# The popularity discount (BlendWeights.popularity = 0.25) multiplies each neighbour's
# score by its popular:all count ** -0.25 before a list is scaled by its best score:
# C3 6, C1 3, P1 2, H1 and P2 1 (and 1 for anything else, the list's last count).
F6, F3 = 6**-0.25, 3**-0.25
VIEWED_P1_TOP = 0.5303 * F6  # C3, still first: C1 0.3536 * F3, P2 0.25, H1 0.1443
BOUGHT_P1_TOP = 0.5 * F6  # C3; C1 0.25 * F3


def test_user_list_u1(pipe: LocalPipeline) -> None:
    # recent C1 (cart), P2, P1 (both only viewed: half weight): anchors 1, 0.8 * 0.5,
    # 0.64 * 0.5; all three are excluded as seen.
    # Default weights: bought 0.1, viewed 0.6, category 0.15, trending 0.05.
    # C3: bought P1 0.32 * 0.1 * 1 = 0.032, viewed P1 0.32 * 0.6 * 1 = 0.192,
    #     accessories 0.15 * 6/6 = 0.15, trending 0.05 * 6/6 = 0.05        -> 0.424, v:P1
    # H1: viewed P1 0.192 * 0.1443 / VIEWED_P1_TOP, trending 0.05 * 1/6     -> v:P1
    assert _recs(pipe, "u1") == [
        ("C3", pytest.approx(0.424), "v:P1"),
        ("H1", pytest.approx(0.192 * 0.1443 / VIEWED_P1_TOP + 0.05 / 6, abs=1e-4), "v:P1"),
    ]


def test_user_list_u2(pipe: LocalPipeline) -> None:
    # recent H1 (click: only looked at), C3 (purchased), C2, P1 (viewed): anchors
    # 1 * 0.5, 0.8, 0.64 * 0.5, 0.512 * 0.5; C3 purchased; all excluded.
    # C1: bought P1 0.256 * 0.1 * 0.25 F3 / BOUGHT_P1_TOP, viewed P1 0.256 * 0.6 *
    #     0.3536 F3 / VIEWED_P1_TOP, accessories 0.15 * 3/6, trending 0.05 * 3/6 -> v:P1
    # P2: viewed P1 0.1536 * 0.25 / VIEWED_P1_TOP, phones 0.15 * 1/2, trending 0.05 * 1/6
    c1 = 0.0256 * 0.25 * F3 / BOUGHT_P1_TOP + 0.1536 * 0.3536 * F3 / VIEWED_P1_TOP + 0.1
    p2 = 0.1536 * 0.25 / VIEWED_P1_TOP + 0.075 + 0.05 / 6
    assert _recs(pipe, "u2") == [
        ("C1", pytest.approx(c1, abs=1e-4), "v:P1"),
        ("P2", pytest.approx(p2, abs=1e-4), "v:P1"),
    ]
    assert [r.to_list() for r in pipe.recommend("u2")] == [
        ["C1", 0.237, "v:P1"],
        ["P2", 0.1967, "v:P1"],
    ]


def test_unknown_user_gets_an_empty_list(pipe: LocalPipeline) -> None:
    assert pipe.recommend("nobody") == []


def test_out_of_stock_item_never_appears(pipe: LocalPipeline) -> None:
    published: list[Any] = [pipe.trending(), pipe.trending(kind="p")]
    published += [pipe.trending(c) for c in ("phones", "accessories", "audio")]
    published += [pipe.item_list(rel, i) for rel in (BOUGHT, VIEWED) for i in ITEMS]
    published += [[[r.item_id] for r in pipe.recommend(u)] for u in ("u1", "u2")]
    assert all(entry[0] != "C2" for lst in published for entry in lst)


def test_restocking_brings_the_item_back() -> None:
    pipe = _run(1, half_life_s=SLOW)
    pipe.apply_catalog(CatalogItem("C2", T0 + 100 * SEC, "Case 2", "accessories"))
    assert pipe.item_list(VIEWED, "P1") == [
        ["C3", 0.5303],
        ["C1", 0.3536],
        ["C2", 0.25],  # ties with P2, first by id
        ["P2", 0.25],
        ["H1", 0.1443],
    ]


def test_late_catalog_record_does_not_undo_a_newer_one() -> None:
    pipe = _run(1, half_life_s=SLOW)
    pipe.apply_catalog(CatalogItem("C2", T0 - 20 * SEC, "old", "accessories"))  # older
    assert pipe.catalog["C2"]["in_stock"] is False


def test_duplicate_events_change_nothing() -> None:
    once = _run(4, half_life_s=SLOW)
    twice = _run(4, [*CATALOG, *EVENTS, *EVENTS], half_life_s=SLOW)
    for user in ("u1", "u2"):
        assert twice.recommend(user) == once.recommend(user)
    assert twice.trending(kind="p") == once.trending(kind="p")


# --- determinism ---------------------------------------------------------------------


def _stream(seed: int, n_events: int = 600) -> list[CatalogItem | Interaction]:
    rnd = random.Random(seed)
    items = [f"i{j}" for j in range(40)]
    cats = ["a", "b", "c", "d:e"]
    out: list[CatalogItem | Interaction] = [
        CatalogItem(
            i,
            T0,
            category=rnd.choice(cats),
            in_stock=rnd.random() > 0.1,
            deleted=rnd.random() < 0.05,
        )
        for i in items
    ]
    types = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "remove_from_cart", "purchase"]
    ts = T0
    for n in range(n_events):
        ts += rnd.randint(0, 90_000)  # up to 90 s apart: spans ~7 hours
        late = rnd.random() < 0.1
        out.append(
            Interaction(
                f"e{n}" if rnd.random() > 0.03 else f"e{n - 1}",  # a few duplicate sends
                rnd.choice(types),
                f"user:{rnd.randint(0, 14)}",
                rnd.choice(items),
                ts - (rnd.randint(0, 600_000) if late else 0),
            )
        )
    return out


def _published(pipe: LocalPipeline, stream: list[Any]) -> dict[str, Any]:
    users = sorted({e.user_id for e in stream if isinstance(e, Interaction)})
    items = sorted({e.item_id for e in stream})
    return {
        "users": {u: [r.to_list() for r in pipe.recommend(u)] for u in users},
        "items": {(rel, i): pipe.item_list(rel, i) for rel in (BOUGHT, VIEWED) for i in items},
        "trending": {
            (c, k): pipe.trending(c, k) for c in ("", "a", "b", "c", "d:e") for k in ("t", "p")
        },
    }


def test_same_events_give_identical_lists() -> None:
    stream = _stream(seed=7)
    a = LocalPipeline(_settings(partitions=4))
    b = LocalPipeline(_settings(partitions=4))
    a.apply_all(stream)
    b.apply_all(list(stream))
    pa, pb = _published(a, stream), _published(b, stream)
    assert pa == pb
    assert sum(len(v) for v in pa["users"].values()) > 50  # the stream is not trivial


def _without_scores(published: dict[str, Any]) -> dict[str, Any]:
    return {
        "users": {
            u: [(i, reason) for i, _, reason in lst] for u, lst in published["users"].items()
        },
        "items": {k: [i for i, _ in lst] for k, lst in published["items"].items()},
    }


def _scores(published: dict[str, Any]) -> list[float]:
    users = [s for lst in published["users"].values() for _, s, _ in lst]
    return users + [s for lst in published["items"].values() for _, s in lst]


@pytest.mark.parametrize("half_life_s", [SLOW, 3 * 86_400.0], ids=["slow-decay", "3-days"])
def test_partition_count_does_not_change_the_lists(half_life_s: float) -> None:
    """Ids, order and reasons are the same for 1 and 4 partitions. Published weights may
    differ in the last digit: an item partition decays its lists to its own latest event
    time, which depends on which items share the partition."""
    stream = _stream(seed=11)
    one = LocalPipeline(_settings(partitions=1, half_life_s=half_life_s))
    four = LocalPipeline(_settings(partitions=4, half_life_s=half_life_s))
    one.apply_all(stream)
    four.apply_all(stream)
    p1, p4 = _published(one, stream), _published(four, stream)
    assert p1["trending"] == p4["trending"]  # merged lists decay to the global time
    assert _without_scores(p1) == _without_scores(p4)
    assert _scores(p1) == pytest.approx(_scores(p4), rel=1e-3)


def test_bug_partition_count_changes_popular_list_on_ties() -> None:
    """Items a and c are equally popular; the published top-1 must be "a" (ties by id, as
    ``merge`` orders them) whether they share a partition or not."""
    cat = [CatalogItem("a", T0), CatalogItem("c", T0)]
    events = [*cat, _ev(0, "view", "u1", "a"), _ev(1, "view", "u2", "c")]
    for partitions in (1, 4):  # with 4 partitions a and c live on different partitions
        pipe = _run(partitions, events, trending_size=1)
        assert pipe.trending(kind="p") == [["a", 1.0]], f"{partitions} partition(s)"


def test_catalog_read_after_the_interactions_gives_the_same_category_lists() -> None:
    """A replay may read the catalogue after the interactions: category lists must not care."""
    first = LocalPipeline(_settings())
    first.apply_all([*CATALOG, *EVENTS])
    late = LocalPipeline(_settings())
    late.apply_all([*EVENTS, *CATALOG])
    for cat in ("phones", "accessories", "audio"):
        assert first.trending(cat), cat
        assert late.trending(cat) == first.trending(cat), cat
        assert late.trending(cat, "p") == first.trending(cat, "p"), cat


def test_a_category_change_moves_the_item_to_its_new_lists() -> None:
    pipe = LocalPipeline(_settings())
    pipe.apply_all([*CATALOG, *EVENTS])
    assert "H1" not in [i for i, *_ in pipe.trending("phones")]
    pipe.apply_catalog(CatalogItem("H1", T0 + 99 * SEC, "Headphones", "phones", price=80.0))
    assert "H1" in [i for i, *_ in pipe.trending("phones")]


def test_business_rules_and_category_cap_shape_the_user_list() -> None:
    # u2's list without rules: C1 (accessories) then P2 (phones); see test_user_list_u2.
    plain = [r.item_id for r in _run(4).recommend("u2")]
    assert plain[:2] == ["C1", "P2"]
    hidden = _run(4, rules="category=accessories*0")
    assert all(r.item_id not in ("C1", "C2", "C3") for r in hidden.recommend("u2"))
    boosted = _run(4, rules="category=phones*10")
    assert [r.item_id for r in boosted.recommend("u2")][:1] == ["P2"]


def test_item_lists_read_between_events_are_never_stale() -> None:
    """Item lists are kept between reads: after every event and catalogue change, each one
    must equal the list built afresh from the item's state and the catalogue."""
    stream = _stream(seed=5, n_events=400)
    rnd = random.Random(5)
    for n in range(0, len(stream), 25):  # stock and deletions change mid-stream
        item = f"i{rnd.randrange(40)}"
        in_stock, deleted = rnd.random() > 0.3, rnd.random() < 0.1
        stream.insert(
            n, CatalogItem(item, T0 + n, category="a", in_stock=in_stock, deleted=deleted)
        )
    pipe = LocalPipeline(_settings(neighbours_kept=8))  # 2 per partition: lists fill and drop
    s = pipe.settings
    read = 0
    for event in stream:
        pipe.apply_all([event])
        for relation in (BOUGHT, VIEWED):
            for item in (f"i{rnd.randrange(40)}" for _ in range(3)):
                got = pipe.item_list(relation, item)
                state = pipe.items.get(item)
                fresh = (
                    item_list(state, relation, pipe.catalog.get, s.item_list_size, s.half_life_s)
                    if state is not None
                    else []
                )
                assert got == fresh, (event, relation, item)
                read += bool(got)
    assert read > 500  # most reads found a list


def test_an_item_moved_to_another_category_leaves_its_old_lists() -> None:
    """Live, the item was offered to its first category; a replay reads the compacted
    catalogue first and never offers it there. Both publish the same category lists."""
    s = load_settings(half_life_s=SLOW)
    first = CatalogItem("X", T0, "x", "shoes")
    moved = CatalogItem("X", T0 + 5 * SEC, "x", "hats")
    views = [_ev(n, "view", f"u{n}", "X") for n in range(3)]
    live, replay = LocalPipeline(s), LocalPipeline(s)
    live.apply_all([first, *views, moved])
    replay.apply_all([moved, *views])
    for kind in ("t", "p"):
        assert live.trending("shoes", kind) == replay.trending("shoes", kind) == []
        assert live.trending("hats", kind) == replay.trending("hats", kind) != []


def test_an_items_neighbour_lists_are_capped_by_bytes_as_set_up() -> None:
    """The pipeline passes the settings' byte cap to the item side: 15 neighbours with ids
    of 256 four-byte characters, from one user, on 48 partitions (9 KB per list), of
    which the strongest 8 are kept; on 1 partition (450 KB per list) all 15."""
    long_ids = [f"{n:02d}" + "\U0001f600" * 254 for n in range(15)]
    events = [Interaction("e-a", "view", "u1", "A", T0)] + [
        Interaction(f"e{n}", "view", "u1", other, T0 + (n + 1) * SEC)
        for n, other in enumerate(long_ids)
    ]
    capped = _run(48, events, neighbours_kept=20_000)
    whole = _run(1, events, neighbours_kept=20_000)
    (held,) = capped.items["A"].neighbours[VIEWED].values()
    fit = capped.settings.neighbour_list_bytes // entry_bytes(long_ids[0])
    assert len(held) == fit == 8
    assert len(whole.items["A"].top(VIEWED, 100)) == 15
    assert set(held) == {k for k, _ in whole.items["A"].top(VIEWED, fit)}
