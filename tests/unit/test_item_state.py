"""Per-item state: decayed popularity, summed neighbour scores, the neighbour cap."""

from __future__ import annotations

import itertools
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.ids import MAX_ID_LEN
from streams import decay
from streams.item_state import (
    MAX_ENTRY_BYTES,
    RECORD_BYTES,
    ItemState,
    entry_bytes,
    scored_list,
)
from streams.settings import Settings
from streams.user_state import BOUGHT, VIEWED, WEIGHT_GRID, Delta, delta

T0 = 1_700_000_000_000
HL = 3600.0  # half-life: one hour
HOUR = 3_600_000
KEPT = 100


def _nb(item: str, other: str, w: float, ts: int = T0, relation: str = VIEWED) -> Delta:
    return delta(item, w, ts, relation, other)


def _values(state: ItemState, relation: str) -> dict[str, float]:
    return dict(state.top(relation, 10**6))


def test_popularity_count_and_trend() -> None:
    s = ItemState()
    s.apply(delta("A", 1.0, T0), HL, KEPT)
    s.apply(delta("A", 3.0, T0 + HOUR), HL, KEPT)
    s.apply(delta("A", 5.0, T0 + HOUR), HL, KEPT)
    assert s.count == 9.0
    # at T0 + 1 h: 1 * 1/2 + 3 + 5 = 8.5
    assert decay.value_at(s.trend, T0 + HOUR, HL) == pytest.approx(8.5, rel=1e-9)
    assert s.last_ts == T0 + HOUR
    assert s.neighbours == {}


def test_late_delta_does_not_lower_last_ts() -> None:
    s = ItemState()
    s.apply(delta("A", 1.0, T0 + 10), HL, KEPT)
    s.apply(delta("A", 1.0, T0), HL, KEPT)
    assert s.last_ts == T0 + 10


def test_neighbour_scores_accumulate_per_relation_without_decay() -> None:
    s = ItemState()
    s.apply(_nb("A", "B", 1.0), HL, KEPT)
    s.apply(_nb("A", "B", 1.0, T0 + 10 * HOUR), HL, KEPT)  # ten half-lives later: still 1.0
    s.apply(_nb("A", "B", 0.5, relation=BOUGHT), HL, KEPT)
    assert _values(s, VIEWED) == {"B": 2.0}
    assert _values(s, BOUGHT) == {"B": 0.5}
    assert s.count == 0.0 and s.trend == decay.NEG_INF  # neighbours are not popularity


def test_top_is_best_first_and_cut() -> None:
    s = ItemState()
    for other, w in (("B", 2.0), ("C", 5.0), ("D", 1.0), ("E", 3.0)):
        s.apply(_nb("A", other, w), HL, KEPT)
    assert [k for k, _ in s.top(VIEWED, 3)] == ["C", "E", "B"]
    assert s.top(BOUGHT, 3) == []


def test_top_breaks_ties_by_item_id() -> None:
    s = ItemState()
    for other in ("c", "a", "b"):
        s.apply(_nb("A", other, 1.0), HL, KEPT)
    assert [k for k, _ in s.top(VIEWED, 3)] == ["a", "b", "c"]


def test_neighbour_cap_keeps_the_strongest() -> None:
    s = ItemState()
    for other, w in (("B", 3.0), ("C", 1.0), ("D", 2.0), ("E", 0.5)):
        s.apply(_nb("A", other, w), HL, neighbours_kept=2)
    assert set(s.neighbours[VIEWED][0]) == {"B", "D"}
    # once dropped, a neighbour starts from scratch: three more 1.0 votes never reach D
    for _ in range(3):
        s.apply(_nb("A", "C", 1.0), HL, neighbours_kept=2)
    assert set(s.neighbours[VIEWED][0]) == {"B", "D"}
    s.apply(_nb("A", "C", 5.0), HL, neighbours_kept=2)
    assert [k for k, _ in s.top(VIEWED, 5)] == ["C", "B"]


def test_equal_neighbours_under_the_cap_are_kept_by_id_not_by_age() -> None:
    s = ItemState()
    s.apply(_nb("A", "a-old", 1.0, T0), HL, neighbours_kept=1)
    s.apply(_nb("A", "b-new", 1.0, T0 + HOUR), HL, neighbours_kept=1)
    assert list(s.neighbours[VIEWED][0]) == ["a-old"]


def test_neighbour_cap_ties_are_deterministic() -> None:
    kept = []
    for order in itertools.permutations("abcd"):
        s = ItemState()
        for other in order:
            s.apply(_nb("A", other, 1.0), HL, neighbours_kept=2)
        kept.append(sorted(s.neighbours[VIEWED][0]))
    assert all(k == kept[0] for k in kept)


def test_bug_neighbour_cap_tie_keeps_what_top_ranks_first() -> None:
    """At equal scores ``top`` prefers the smaller id, so the cap must drop the larger id;
    otherwise a list depends on ``neighbours_kept`` even when it is shorter than the cap."""
    capped, uncapped = ItemState(), ItemState()
    for other in "abc":
        capped.apply(_nb("A", other, 1.0), HL, neighbours_kept=2)
        uncapped.apply(_nb("A", other, 1.0), HL, neighbours_kept=KEPT)
    assert capped.top(VIEWED, 2) == uncapped.top(VIEWED, 2)
    assert sorted(capped.neighbours[VIEWED][0]) == ["a", "b"]


def test_the_cap_holds_per_source_partition() -> None:
    s = ItemState()
    for source, others in ((0, "bcd"), (1, "efg")):
        for w, other in enumerate(others, 1):
            s.apply(_nb("A", other, float(w)), HL, 2, source)
    assert {sp: set(lst) for sp, lst in s.neighbours[VIEWED].items()} == {
        0: {"c", "d"},
        1: {"f", "g"},
    }
    assert _values(s, VIEWED) == {"c": 2.0, "d": 3.0, "f": 2.0, "g": 3.0}


def test_published_scores_sum_the_source_lists() -> None:
    s = ItemState()
    s.apply(_nb("A", "B", 1.0), HL, KEPT, 1)
    s.apply(_nb("A", "B", 0.5), HL, KEPT, 0)
    s.apply(_nb("A", "C", 2.0), HL, KEPT, 0)
    assert s.top(VIEWED, 5) == [("C", 2.0), ("B", 1.5)]


_pairs = st.lists(
    st.tuples(st.sampled_from("abcdefghij"), st.sampled_from([0.25, 0.5, 1.0])), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_pairs, min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_capped_lists_do_not_depend_on_how_sources_interleave(
    sources: list[list[tuple[str, float]]], seed: int
) -> None:
    """Each source partition's pairs in their own order, the sources interleaved at
    random: the state is the same as with the sources one after another, though the cap
    (3 of 10 neighbours) drops some in every list."""
    in_turn, interleaved = ItemState(), ItemState()
    for source, pairs in enumerate(sources):
        for other, w in pairs:
            in_turn.apply(_nb("A", other, w), HL, 3, source)
    queues = [[(source, p) for p in pairs] for source, pairs in enumerate(sources)]
    rng = random.Random(seed)
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        source, (other, w) = queue.pop(0)
        interleaved.apply(_nb("A", other, w), HL, 3, source)
    assert interleaved.neighbours == in_turn.neighbours
    assert interleaved.top(VIEWED, 10) == in_turn.top(VIEWED, 10)


def _hostile(i: int) -> str:
    """The ``i``-th of distinct ids as long as ids get, every character 4 bytes in UTF-8."""
    return f"{i:08d}" + "\U0001f600" * (MAX_ID_LEN - 8)


def _fill(state: ItemState, partitions: int, per_list: int, kept: int, max_bytes: int) -> None:
    for source in range(partitions):
        for relation in (VIEWED, BOUGHT):
            for i in range(per_list):
                w = float(1 + i % 7)
                state.apply(_nb("A", _hostile(i), w, T0, relation), HL, kept, source, max_bytes)
    state.apply(delta("A", 1.0, T0), HL, kept, partitions - 1)


@pytest.mark.parametrize("partitions", [1, 4, 48])
def test_an_item_record_fits_the_producers_limit_whatever_its_neighbours_ids(
    partitions: int,
) -> None:
    """An item's state is one changelog record: with 20,000 neighbours kept (far more than
    fit) and every neighbour id 256 four-byte characters, in both relations from every
    source partition, it stays under the record budget (the producers refuse 1 MB)."""
    s = Settings(partitions=partitions, neighbours_kept=20_000)
    fit = s.neighbour_list_bytes // entry_bytes(_hostile(0))
    assert fit < s.neighbours_per_partition  # the count cap alone would not bound it
    state = ItemState()
    _fill(state, partitions, fit + 20, s.neighbours_per_partition, s.neighbour_list_bytes)
    assert len(orjson.dumps(state.to_dict())) <= RECORD_BYTES
    held = [len(lst) for lists in state.neighbours.values() for lst in lists.values()]
    assert held == [fit] * (2 * partitions)  # each list as full as its bytes allow
    # the count cap alone passes the limit
    alone = ItemState()
    _fill(alone, partitions, fit + 20, s.neighbours_per_partition, 1 << 62)
    assert len(orjson.dumps(alone.to_dict())) > RECORD_BYTES


def test_a_list_over_its_bytes_keeps_its_strongest_neighbours() -> None:
    """Room for three long ids: the weakest go, whatever their length."""
    long = ["x" * 200 + c for c in "abcde"]
    room = 3 * entry_bytes(long[0])
    s = ItemState()
    for w, other in zip([5.0, 1.0, 4.0, 2.0, 3.0], long, strict=True):
        s.apply(_nb("A", other, w), HL, KEPT, 0, room)
    assert [k[-1] for k, _ in s.top(VIEWED, 10)] == ["a", "c", "e"]
    # a short id still fits beside them? no: three long ones fill the room, so the
    # weakest (the newcomer at 0.5) is the one turned away
    s.apply(_nb("A", "s", 0.5), HL, KEPT, 0, room)
    assert [k[-1] for k, _ in s.top(VIEWED, 10)] == ["a", "c", "e"]
    # a strong newcomer pushes out the weakest long id
    s.apply(_nb("A", "s", 9.0), HL, KEPT, 0, room)
    assert [k[-1] for k, _ in s.top(VIEWED, 10)] == ["s", "a", "c"]


def _reference(pairs: list[tuple[str, float]], kept: int, max_bytes: int) -> dict[str, float]:
    """The caps as stated, by brute force: after each newcomer, drop the weakest (lowest
    score, greatest id) while more than ``kept`` or more than ``max_bytes`` of entries."""
    scores: dict[str, float] = {}
    for other, w in pairs:
        if other in scores:
            scores[other] += w
            continue
        scores[other] = w
        while len(scores) > kept or sum(map(entry_bytes, scores)) > max_bytes:
            low = min(scores.values())
            del scores[max(k for k, v in scores.items() if v == low)]
    return scores


_ids = st.builds(
    lambda stem, n, c: stem + c * n,
    st.sampled_from("abcdefgh"),
    st.integers(0, MAX_ID_LEN - 1),  # ids are at most MAX_ID_LEN characters
    st.sampled_from(["x", "é", "\U0001f600", '"', "\\"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_ids, st.sampled_from([1.0, 2.0, 3.0])), max_size=60),
    st.integers(1, 12),
    st.integers(0, 4 * MAX_ENTRY_BYTES),
)
def test_the_byte_cap_matches_its_statement(
    pairs: list[tuple[str, float]], kept: int, max_bytes: int
) -> None:
    """Lists measured incrementally (only once long enough, then forgotten when short
    again) hold what the brute-force statement of both caps holds."""
    s = ItemState()
    for other, w in pairs:
        s.apply(_nb("A", other, w), HL, kept, 0, max_bytes)
    expected = _reference(pairs, kept, max_bytes)
    assert s.neighbours.get(VIEWED, {}).get(0, {}) == expected


def test_entry_bytes_bounds_what_an_entry_adds_to_the_record() -> None:
    ids = ["a", "é", "\U0001f600" * MAX_ID_LEN, '"\\', "x" * MAX_ID_LEN]
    for other in ids:
        s = ItemState()
        s.apply(_nb("A", "b", 1.0), HL, KEPT)
        before = len(orjson.dumps(s.to_dict()))
        s.apply(_nb("A", other, 2.0**40 / 3), HL, KEPT)
        assert len(orjson.dumps(s.to_dict())) - before <= entry_bytes(other) <= MAX_ENTRY_BYTES


def test_a_state_written_with_one_list_per_relation_loads_as_partition_0s() -> None:
    """Written before scores were kept per source, and as floats: partition 0's list, in
    units of 2**-24."""
    doc = {"c": 0.0, "t": None, "l": T0, "n": {VIEWED: {"B": 2.0, "C": 0.75}}, "a": {"3": 7}}
    s = ItemState.from_dict(doc)
    assert s.neighbours == {VIEWED: {0: {"B": 2 * WEIGHT_GRID, "C": 3 * WEIGHT_GRID // 4}}}
    assert s.top(VIEWED, 5) == [("B", 2 * WEIGHT_GRID), ("C", 3 * WEIGHT_GRID // 4)]


def test_a_state_written_with_float_scores_per_source_loads_in_units() -> None:
    doc = {"c": 1.0, "t": None, "l": T0, "n": {BOUGHT: {"2": {"B": 0.25}, "0": {"B": 1.0}}}}
    s = ItemState.from_dict(doc)
    assert s.neighbours == {BOUGHT: {2: {"B": WEIGHT_GRID // 4}, 0: {"B": WEIGHT_GRID}}}
    assert type(s.neighbours[BOUGHT][0]["B"]) is int
    again = ItemState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    assert again == s  # written in units, read as they are


def test_state_round_trip_through_json() -> None:
    s = ItemState()
    s.apply(delta("A", 3.0, T0), HL, KEPT)
    s.apply(_nb("A", "B:1", 1.0, T0 + 5), HL, KEPT)
    s.apply(_nb("A", "ü", 0.5, T0 + 7, BOUGHT), HL, KEPT)
    s.apply(_nb("A", "B:1", 0.5, T0 + 9), HL, KEPT, 3)
    back = ItemState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    assert back == s


def test_state_without_popularity_round_trips() -> None:
    s = ItemState()
    s.apply(_nb("A", "B", 1.0), HL, KEPT)
    doc = orjson.loads(orjson.dumps(s.to_dict()))
    assert doc["t"] == {}  # no trend yet (-inf would not be JSON)
    back = ItemState.from_dict(doc)
    assert back.trend == decay.NEG_INF
    assert back == s


def test_scored_list_shows_decayed_weights() -> None:
    ranked = [
        ("C", decay.add(decay.NEG_INF, 3.0, T0 + HOUR, HL)),
        ("B", decay.add(decay.NEG_INF, 1.0, T0, HL)),
    ]
    # at T0 + 2 h: B = 1/4, C = 3/2
    assert scored_list(ranked, T0 + 2 * HOUR, HL) == [["C", 1.5], ["B", 0.25]]
    # 6 significant digits: 1/3 of a half-life later, 1.5 * 2**(-1/3) = 1.1905507...
    later = scored_list(ranked, T0 + 2 * HOUR + HOUR // 3, HL)
    assert later == [["C", 1.19055], ["B", 0.198425]]
    # the ratio a user list blends does not depend on when the list was published
    now = scored_list(ranked, T0 + 2 * HOUR, HL)
    assert later[1][1] / later[0][1] == pytest.approx(now[1][1] / now[0][1], rel=1e-6)
    # 4 decimals did not: the same two values 100 half-lives earlier and later
    tiny = scored_list(ranked, T0 + 2 * HOUR + 100 * HOUR, HL)
    assert tiny[1][1] / tiny[0][1] == pytest.approx(now[1][1] / now[0][1], rel=1e-6)


def test_the_trend_does_not_depend_on_how_partitions_interleave() -> None:
    """Float addition is not associative: three views at 0, 1 and 2 ms summed in the
    orders (0, 1, 2) and (0, 2, 1) differ in the last bit. One trend per source
    partition, merged in partition order, gives one answer for every interleaving that
    keeps each partition's own order."""
    events = [(0, 0), (0, 1), (1, 2)]  # (source partition, ts): partition 0 has 0 then 1
    orders = [[0, 1, 2], [0, 2, 1], [2, 0, 1]]
    trends = set()
    for order in orders:
        s = ItemState()
        for i in order:
            sp, ts = events[i]
            s.popularity(1.0, ts, 3600, sp)
        trends.add(s.trend)
    assert len(trends) == 1
    plain = {
        decay.add(decay.add(decay.add(decay.NEG_INF, 1.0, a, 3600), 1.0, b, 3600), 1.0, c, 3600)
        for a, b, c in ((0, 1, 2), (0, 2, 1))
    }
    assert len(plain) == 2  # what a single running sum gave


def test_a_trend_of_the_earlier_form_is_read_as_partition_zeros() -> None:
    s = ItemState()
    s.popularity(2.0, T0, HL)
    earlier = {**s.to_dict(), "t": s.trend}
    back = ItemState.from_dict(orjson.loads(orjson.dumps(earlier)))
    assert back.trends == {0: s.trend} and back.trend == s.trend
