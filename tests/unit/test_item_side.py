"""Item-side folding: delta groups in, item states and trending partials out, exactly once."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Interaction
from streams.item_side import (
    BatchResult,
    Group,
    PartitionState,
    apply_groups,
    decode_groups,
    encode_groups,
    encode_messages,
    recategorize,
    route,
)
from streams.item_state import ItemState
from streams.partitioning import partition_for
from streams.trending import GLOBAL, Partial, Tops
from streams.user_state import BOUGHT, VIEWED, WEIGHT_GRID, UserState, delta

T0 = 1_700_000_000_000
HL = 3600.0
KEPT = 100
CATEGORIES = {"A": "shoes", "B": "shoes", "C": "hats"}


def _apply(groups: list[Group], part: PartitionState, items: dict[str, ItemState]) -> BatchResult:
    return apply_groups(groups, part, items, CATEGORIES.get, HL, KEPT)


def g(
    sp: int,
    off: int,
    ts: int,
    item: str,
    interest: float = 0.0,
    ahead: dict[str, list[Any]] | None = None,
    back: dict[str, list[Any]] | None = None,
) -> Group:
    return (sp, off, ts, item, interest, ahead or {}, back or {})


U = WEIGHT_GRID  # a pair weight of 1, in the units pairs travel in


def _groups() -> list[Group]:
    return [
        g(0, 0, T0, "A", 1.0),
        # B viewed after A: B gains A, A gains B
        g(0, 1, T0 + 1, "B", 1.0, ahead={VIEWED: ["A", U]}, back={VIEWED: ["A", U]}),
        g(1, 0, T0 + 2, "C", 5.0, back={BOUGHT: ["A", U // 2]}),  # C bought after A
        g(0, 2, T0 + 3, "D", 3.0),  # D has no category
    ]


def _float_groups() -> list[Group]:
    """The same groups as an ingest wrote them before weights travelled in units."""
    return [
        g(0, 0, T0, "A", 1.0),
        g(0, 1, T0 + 1, "B", 1.0, ahead={VIEWED: ["A", 1.0]}, back={VIEWED: ["A", 1.0]}),
        g(1, 0, T0 + 2, "C", 5.0, back={BOUGHT: ["A", 0.5]}),
        g(0, 2, T0 + 3, "D", 3.0),
    ]


def _rows() -> list[Any]:
    """The same updates in the earlier wire form: one row per update."""
    return [
        [0, 0, [delta("A", 1.0, T0)]],
        [
            0,
            1,
            [
                delta("A", 1.0, T0 + 1, VIEWED, "B"),
                delta("B", 1.0, T0 + 1, VIEWED, "A"),
                delta("B", 1.0, T0 + 1),
            ],
        ],
        [1, 0, [delta("C", 5.0, T0 + 2), delta("A", 0.5, T0 + 2, BOUGHT, "C")]],
        [0, 2, [delta("D", 3.0, T0 + 3)]],
    ]


def _snapshot(part: PartitionState, items: dict[str, ItemState]) -> Any:
    return (
        json.dumps(part.to_dict(), sort_keys=True),
        json.dumps({k: v.to_dict() for k, v in items.items()}, sort_keys=True),
    )


def test_groups_wire_round_trip() -> None:
    groups = _groups()
    assert decode_groups(encode_groups(groups)) == [list(group) for group in groups]
    assert decode_groups(encode_groups([])) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), max_size=80), st.integers(40, 2_000))
def test_large_batches_split_into_messages_under_the_limit_in_order(
    ids: list[str], max_bytes: int
) -> None:
    groups = [
        g(0, off, T0 + off, item, 1.0, ahead={VIEWED: [ids[0], 0.5] * 3})
        for off, item in enumerate(ids)
    ]
    messages = encode_messages(groups, max_bytes)
    assert [x for raw in messages for x in decode_groups(raw)] == [list(x) for x in groups]
    for raw in messages:  # every part fits, unless it is one group too large alone
        assert len(raw) <= max_bytes or len(decode_groups(raw)) == 1
    if len(encode_groups(groups)) <= max_bytes:
        assert len(messages) == 1  # a batch that fits is not split


def test_decoded_groups_fold_as_built_ones_do() -> None:
    built = PartitionState(Partial(10)), dict[str, ItemState]()
    decoded = PartitionState(Partial(10)), dict[str, ItemState]()
    a = _apply(_groups(), *built)
    b = apply_groups(decode_groups(encode_groups(_groups())), *decoded, CATEGORIES.get, HL, KEPT)
    assert _snapshot(*decoded) == _snapshot(*built)
    assert (b.relations, b.categories, b.skipped) == (a.relations, a.categories, a.skipped)


def test_groups_of_the_earlier_row_form_fold_the_same() -> None:
    """Messages an older ingest left in the topic are still read after an upgrade."""
    current = PartitionState(Partial(10)), dict[str, ItemState]()
    earlier = PartitionState(Partial(10)), dict[str, ItemState]()
    a = _apply(_groups(), *current)
    raw = orjson.dumps(_rows())
    b = apply_groups(decode_groups(raw), *earlier, CATEGORIES.get, HL, KEPT)
    assert _snapshot(*earlier) == _snapshot(*current)
    assert (b.relations, b.categories, b.skipped) == (a.relations, a.categories, a.skipped)


def test_groups_with_float_weights_fold_the_same() -> None:
    """Messages an ingest wrote before weights travelled in units of 2**-24."""
    current = PartitionState(Partial(10)), dict[str, ItemState]()
    earlier = PartitionState(Partial(10)), dict[str, ItemState]()
    a = _apply(_groups(), *current)
    raw = orjson.dumps(_float_groups())
    assert b"1.0" in raw and str(U).encode() not in raw
    b = apply_groups(decode_groups(raw), *earlier, CATEGORIES.get, HL, KEPT)
    assert _snapshot(*earlier) == _snapshot(*current)
    assert (b.relations, b.categories, b.skipped) == (a.relations, a.categories, a.skipped)
    assert current[1]["A"].neighbours == {VIEWED: {0: {"B": U}}, BOUGHT: {1: {"C": U // 2}}}


def test_apply_groups_folds_every_delta() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    result = _apply(_groups(), part, items)
    assert {k: s.count for k, s in items.items()} == {"A": 1.0, "B": 1.0, "C": 5.0, "D": 3.0}
    assert [k for k, _ in items["A"].top(VIEWED, 5)] == ["B"]
    assert [k for k, _ in items["A"].top(BOUGHT, 5)] == ["C"]
    assert [k for k, _ in items["B"].top(VIEWED, 5)] == ["A"]
    assert result.states == items
    assert result.relations == {"A": {VIEWED, BOUGHT}, "B": {VIEWED}}
    assert result.categories == {GLOBAL, "shoes", "hats"}
    assert result.skipped == 0
    # each item remembers the last source offset applied, per source partition
    applied = {k: st.applied for k, st in items.items()}
    assert applied == {"A": {0: 1, 1: 0}, "B": {0: 1}, "C": {1: 0}, "D": {0: 2}}
    assert part.max_ts == T0 + 3
    assert part.partial.popular[GLOBAL].ranked() == [("C", 5.0), ("D", 3.0), ("A", 1.0), ("B", 1.0)]
    assert [k for k, _ in part.partial.popular["shoes"].ranked()] == ["A", "B"]
    assert [k for k, _ in part.partial.trending["hats"].ranked()] == ["C"]


def test_redelivered_groups_are_no_ops() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    once = _snapshot(part, items)
    again = _apply(_groups(), part, items)
    assert again.skipped == 7  # every delta of the 4 groups
    assert again.relations == {}
    # popular items are offered again (a no-op) so a lost top-K update can be repaired
    assert again.categories == {GLOBAL, "shoes", "hats"}
    assert _snapshot(part, items) == once


def test_partly_redelivered_batch_applies_only_the_new_groups() -> None:
    groups = _groups()
    part1, items1 = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(groups, part1, items1)

    part2, items2 = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(groups[:2], part2, items2)
    result = _apply(groups[1:], part2, items2)  # group (0, 1) comes again
    assert result.skipped == 3  # its three deltas
    assert _snapshot(part2, items2) == _snapshot(part1, items1)


def test_watermarks_are_per_source_partition() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply([g(0, 10, T0, "A", 1.0)], part, items)
    result = _apply([g(1, 3, T0, "A", 1.0)], part, items)  # lower offset, other source
    assert result.skipped == 0
    assert items["A"].count == 2.0
    assert items["A"].applied == {0: 10, 1: 3}


def test_relation_only_batch_republishes_no_category() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    result = _apply([g(0, 0, T0, "A", ahead={VIEWED: ["B", U]})], part, items)
    assert result.categories == set()
    assert result.relations == {"A": {VIEWED}}


def test_categories_of_popularity_updates_are_republished() -> None:
    part, items = PartitionState(Partial(1)), dict[str, ItemState]()
    _apply([g(0, 0, T0, "C", 5.0)], part, items)
    # A cannot enter the top-1 global list (1 < 5), but its lists are republished anyway:
    # republishing is idempotent, and it repairs a merge that missed an update in a crash
    result = _apply([g(0, 1, T0 - 1, "A", 1.0)], part, items)
    assert result.categories == {GLOBAL, "shoes"}
    assert [k for k, _ in part.partial.popular[GLOBAL].ranked()] == ["C"]
    assert [k for k, _ in part.partial.popular["shoes"].ranked()] == ["A"]


def test_items_may_be_a_factory() -> None:
    store: dict[str, ItemState] = {}
    calls: list[str] = []

    def get(item: str) -> ItemState:
        calls.append(item)
        return store.setdefault(item, ItemState())

    part = PartitionState(Partial(10))
    apply_groups(_groups(), part, get, CATEGORIES.get, HL, KEPT)
    assert sorted(calls) == ["A", "B", "C", "D"]  # fetched once each per batch
    assert store["C"].count == 5.0


def test_result_accumulates_across_calls() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    groups = _groups()
    result = _apply(groups[:1], part, items)
    apply_groups(groups[1:], part, items, CATEGORIES.get, HL, KEPT, result)
    assert set(result.states) == {"A", "B", "C", "D"}
    assert result.relations == {"A": {VIEWED, BOUGHT}, "B": {VIEWED}}


def _saved(part: PartitionState, dumps: Any = json.dumps, loads: Any = json.loads) -> Any:
    """What the workers write for ``part``: its record and one record per category."""
    record = loads(dumps(part.to_dict()))
    tops = {cat: loads(dumps(part.partial.tops(cat).to_dict())) for cat in part.partial.trending}
    return record, tops


def _restored(record: Any, tops: dict[str, Any]) -> PartitionState:
    """A partition state as a worker reads it back: its categories loaded on first use."""
    part = PartitionState.from_dict(record)
    part.partial.load = lambda cat: Tops.from_dict(tops[cat]) if cat in tops else None
    return part


def test_partition_state_round_trip() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    back = _restored(*_saved(part, copy.deepcopy, lambda x: x))
    assert back.max_ts == part.max_ts and not back.unsaved
    assert back.partial.trending == {}  # nothing loaded before it is used
    for cat in part.partial.trending:
        assert back.partial.tops(cat).to_dict() == part.partial.tops(cat).to_dict()
    via_json = _restored(*_saved(part))
    assert via_json.partial.tops(GLOBAL).popular.ranked() == part.partial.popular[GLOBAL].ranked()
    # items restored through JSON (text keys) still make redeliveries no-ops
    restored = {
        k: ItemState.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in items.items()
    }
    assert apply_groups(_groups(), via_json, restored, CATEGORIES.get, HL, KEPT).skipped == 7
    assert via_json.partial.export(part.partial.trending) == part.partial.export(
        part.partial.trending
    )


def test_partition_state_survives_the_orjson_changelog_codec() -> None:
    """agents/codecs.StateCodec writes ``orjson.dumps(state.to_dict())``, and orjson refuses
    int dict keys: applied offsets must be written with text keys."""
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    back = _restored(*_saved(part, orjson.dumps, orjson.loads))
    for cat in part.partial.trending:
        assert back.partial.tops(cat).to_dict() == part.partial.tops(cat).to_dict()
    item = ItemState.from_dict(orjson.loads(orjson.dumps(items["A"].to_dict())))
    assert item.applied == {0: 1, 1: 0}


def test_a_partition_record_does_not_grow_with_its_categories() -> None:
    """One record of every category's lists passed the broker's 1 MB limit at about 600
    categories; the partition's record is now its event time, each category its own."""
    part = PartitionState(Partial(100))
    for c in range(2_000):
        for i in range(100):
            part.partial.offer(f"item-{c}-{i:03d}-" + "x" * 40, f"category-{c}", i, i)
    assert len(orjson.dumps(part.to_dict())) < 100
    largest = max(len(orjson.dumps(part.partial.tops(c).to_dict())) for c in part.partial.trending)
    assert largest < 20_000


def test_a_record_of_the_earlier_form_is_read_whole_and_saved_per_category() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    earlier = {"p": part.partial.to_dict(), "t": part.max_ts}  # lists inside, as before
    back = PartitionState.from_dict(json.loads(json.dumps(earlier)))
    assert back.unsaved == set(part.partial.trending) and len(back.unsaved) >= 2
    assert back.partial.export(back.unsaved) == part.partial.export(back.unsaved)


_events = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2"]),
        st.sampled_from(["view", "click", "add_to_cart", "purchase", "remove_from_cart"]),
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
        st.integers(0, 10 * 86_400_000),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(_events, st.integers(1, 4))
def test_routed_groups_fold_as_their_updates_one_by_one(
    events: list[tuple[str, str, str, int]], partitions: int
) -> None:
    """route() + apply_groups, per item partition, against ItemState.apply per update."""
    users: dict[str, UserState] = {}
    parts = {p: PartitionState(Partial(10)) for p in range(partitions)}
    folded: dict[str, ItemState] = {}
    reference: dict[str, ItemState] = {}
    for off, (user, type_, item, dt) in enumerate(events):
        ev = Interaction(f"e{off}", type_, user, item, T0 + dt)
        deltas = users.setdefault(user, UserState()).apply(ev, off, 4)
        for p, group in route(deltas, 0, off, partitions).items():
            result = apply_groups([group], parts[p], folded, CATEGORIES.get, HL, 3)
            assert {partition_for(i, partitions) for i in result.states} <= {p}
        for row in deltas.rows():
            reference.setdefault(row[0], ItemState()).apply(row, HL, 3)
    assert {k: (s.count, s.trend, s.last_ts, s.neighbours) for k, s in folded.items()} == {
        k: (s.count, s.trend, s.last_ts, s.neighbours) for k, s in reference.items()
    }


def test_a_move_republishes_the_old_category() -> None:
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    known = next(iter(items))
    assert "old" in recategorize([(known, "new", "old")], part, items.get)
    assert "old" not in recategorize([(known, "new")], part, items.get)  # earlier form


def test_a_move_redone_republishes_the_new_category() -> None:
    """Redone after a crash before the partials went out, the item is already in place."""
    part, items = PartitionState(Partial(10)), dict[str, ItemState]()
    _apply(_groups(), part, items)
    move = [("A", "new", "shoes")]
    assert recategorize(move, part, items.get) >= {"new", "shoes"}
    assert recategorize(move, part, items.get) >= {"new", "shoes"}
