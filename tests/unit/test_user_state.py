"""Per-user state: events in, recent history and item-side deltas out."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.events import Interaction
from streams.user_state import (
    BOUGHT,
    EVENT_IDS_KEPT,
    VIEWED,
    WEIGHT_GRID,
    Delta,
    RecentItem,
    UserState,
    delta,
)

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_000_000_000


class Feed:
    """Applies events to one user with increasing offsets and fresh event ids."""

    def __init__(self, recent_size: int = 20, covisit: bool = True) -> None:
        self.state = UserState()
        self.offset = -1
        self.recent_size = recent_size
        self.covisit = covisit  # False: leave out the co-visitation deltas

    def __call__(self, type_: str, item: str, ts: int, event_id: str | None = None) -> list[Delta]:
        self.offset += 1
        eid = event_id or f"e{self.offset}"
        ev = Interaction(eid, type_, "u1", item, ts)
        out = self.state.apply(ev, self.offset, self.recent_size).rows()
        return out if self.covisit else [d for d in out if d[3] != VIEWED]


def _key(d: Delta) -> tuple[Any, ...]:
    item_id, weight, ts, relation, other = d
    return (item_id, relation or "", other or "", weight, ts)


def _same(actual: list[Delta], expected: list[Delta]) -> None:
    assert sorted(actual, key=_key) == sorted(expected, key=_key)


def pop(item: str, w: float, ts: int) -> Delta:
    return delta(item, w, ts)


def rel(item: str, w: float, ts: int, relation: str, other: str) -> Delta:
    """A pair of weight ``w``, as the user side ships it: in units of 2**-24, rounded."""
    return delta(item, round(w * WEIGHT_GRID), ts, relation, other)


# --- recent history ------------------------------------------------------------------


def test_recent_items_most_recent_first() -> None:
    feed = Feed()
    feed("view", "A", T0)
    feed("view", "B", T0 + 1)
    feed("click", "C", T0 + 2)
    assert feed.state.recent_items() == ["C", "B", "A"]


def test_repeat_moves_item_to_front_without_duplicates() -> None:
    feed = Feed()
    feed("view", "A", T0)
    feed("view", "B", T0 + 1)
    feed("view", "A", T0 + 2)
    assert feed.state.recent_items() == ["A", "B"]
    assert [r.ts for r in feed.state.recent] == [T0 + 1, T0 + 2]


def test_recent_is_capped_keeping_the_newest() -> None:
    feed = Feed(recent_size=3)
    for i, item in enumerate("ABCDE"):
        feed("view", item, T0 + i)
    assert feed.state.recent_items() == ["E", "D", "C"]


def test_strongest_type_is_kept() -> None:
    feed = Feed()
    feed("purchase", "A", T0)
    feed("view", "A", T0 + 1)
    feed("click", "A", T0 + 2)
    assert feed.state.recent == [RecentItem("A", "purchase", T0 + 2)]
    feed("view", "B", T0 + 3)
    feed("add_to_cart", "B", T0 + 4)
    assert feed.state.recent[-1] == RecentItem("B", "add_to_cart", T0 + 4)


def test_remove_from_cart_overrides_a_stronger_type() -> None:
    feed = Feed()
    feed("add_to_cart", "A", T0)
    assert feed("remove_from_cart", "A", T0 + 1) == []  # no interest, no pairs
    assert feed.state.recent == [RecentItem("A", "remove_from_cart", T0 + 1)]


def test_a_removal_older_than_the_purchase_it_follows_does_not_undo_it() -> None:
    """Event time, not arrival: a removal from the cart stamped before the purchase
    that arrived first leaves the item bought."""
    feed = Feed()
    feed("purchase", "A", T0 + 10)
    feed("remove_from_cart", "A", T0 + 5)  # arrives late
    assert feed.state.recent == [RecentItem("A", "purchase", T0 + 10)]
    feed("remove_from_cart", "A", T0 + 20)  # a later one does
    assert feed.state.recent == [RecentItem("A", "remove_from_cart", T0 + 20)]


def test_out_of_order_event_is_inserted_in_event_time_order() -> None:
    feed = Feed()
    feed("view", "A", T0 + 10)
    feed("view", "B", T0 + 30)
    feed("view", "C", T0 + 20)  # arrives late
    assert feed.state.recent_items() == ["B", "C", "A"]
    feed("view", "D", T0)  # older than everything
    assert feed.state.recent_items() == ["B", "C", "A", "D"]
    assert feed.state.last_ts == T0 + 30


def test_late_event_older_than_the_cap_is_dropped_at_once() -> None:
    feed = Feed(recent_size=2)
    feed("view", "A", T0 + 10)
    feed("view", "B", T0 + 20)
    feed("view", "C", T0)  # oldest: inserted first, then cut by the cap
    assert feed.state.recent_items() == ["B", "A"]


def test_bug_late_event_does_not_make_item_older() -> None:
    """A late event of an item already seen later must not move the item back in time:
    ``RecentItem.ts`` is documented as the *last* event time of the item."""
    feed = Feed()
    feed("view", "A", T0 + 100)
    feed("view", "B", T0 + 90)
    feed("click", "A", T0 + 50)  # late: the view at T0 + 100 is still the last event of A
    assert feed.state.recent == [
        RecentItem("B", "view", T0 + 90),
        RecentItem("A", "click", T0 + 100),
    ]
    assert feed.state.recent_items() == ["A", "B"]


def test_purchased_set_without_duplicates() -> None:
    feed = Feed()
    feed("purchase", "A", T0)
    feed("view", "B", T0 + 1)
    feed("purchase", "A", T0 + 2)
    feed("add_to_cart", "C", T0 + 3)
    feed("purchase", "B", T0 + 4)
    assert feed.state.purchased == ["A", "B"]


# --- duplicates ----------------------------------------------------------------------


def test_duplicate_event_id_is_a_no_op() -> None:
    feed = Feed()
    feed("view", "A", T0, event_id="x")
    before = feed.state.to_dict()
    before = orjson.loads(orjson.dumps(before))
    assert feed("purchase", "B", T0 + 1, event_id="x") == []
    assert orjson.loads(orjson.dumps(feed.state.to_dict())) == before


def test_redelivered_offset_is_a_no_op() -> None:
    state = UserState()
    assert state.apply(Interaction("e1", "view", "u", "A", T0), 5, 20).rows() == [pop("A", 1.0, T0)]
    snapshot = orjson.dumps(state.to_dict())
    assert state.apply(Interaction("e2", "view", "u", "B", T0), 5, 20).rows() == []  # same offset
    assert state.apply(Interaction("e3", "view", "u", "B", T0), 4, 20).rows() == []  # older offset
    assert orjson.dumps(state.to_dict()) == snapshot
    assert state.apply(Interaction("e4", "view", "u", "B", T0), 6, 20).rows() != []


def test_event_ids_are_bounded() -> None:
    feed = Feed()
    for i in range(EVENT_IDS_KEPT + 5):
        feed("view", f"I{i}", T0 + i)
    assert len(feed.state.event_ids) == EVENT_IDS_KEPT
    assert feed.state.event_ids[-1] == f"e{EVENT_IDS_KEPT + 4}"


# --- co-visitation pairs ("also viewed") ----------------------------------------------


def _covisit(deltas: list[Delta]) -> list[Delta]:
    return [d for d in deltas if d[3] == VIEWED]


def test_co_visit_pairs_both_ways_weighted_by_strength() -> None:
    feed = Feed()
    assert feed("view", "A", T0) == [pop("A", 1.0, T0)]
    t = T0 + 30 * MIN
    # a view and a click are half-strength signals: 0.5 * 0.5
    _same(
        feed("click", "B", t),
        [rel("A", 0.25, t, VIEWED, "B"), rel("B", 0.25, t, VIEWED, "A"), pop("B", 1.0, t)],
    )


def test_co_visit_weight_falls_with_step_distance() -> None:
    feed = Feed()
    feed("view", "A", T0)
    feed("purchase", "B", T0 + 1)
    t = T0 + 2
    # C (purchase, 1.0) with B (purchase, 1.0, 0 steps back): 1.0 / 1 ** 0.5
    # C with A (view, 0.5, 1 step back): 0.5 / 2 ** 0.5
    _same(
        _covisit(feed("purchase", "C", t)),
        [
            rel("B", 1.0, t, VIEWED, "C"),
            rel("C", 1.0, t, VIEWED, "B"),
            rel("A", 0.5 / 2**0.5, t, VIEWED, "C"),
            rel("C", 0.5 / 2**0.5, t, VIEWED, "A"),
        ],
    )


def test_co_visit_has_no_time_window() -> None:
    feed = Feed()
    feed("view", "A", T0)
    t = T0 + 30 * DAY
    _same(
        _covisit(feed("view", "B", t)),
        [rel("A", 0.25, t, VIEWED, "B"), rel("B", 0.25, t, VIEWED, "A")],
    )


def test_repeated_item_moves_up_and_is_not_a_step() -> None:
    feed = Feed()
    feed("view", "A", T0)
    feed("view", "B", T0 + 1)
    # A again: its own earlier entry is skipped, B is 0 steps back
    _same(
        _covisit(feed("view", "A", T0 + 2)),
        [rel("B", 0.25, T0 + 2, VIEWED, "A"), rel("A", 0.25, T0 + 2, VIEWED, "B")],
    )
    # history is now B, A (most recent last): C pairs with A at 0 steps, B at 1
    t = T0 + 3
    _same(
        _covisit(feed("view", "C", t)),
        [
            rel("A", 0.25, t, VIEWED, "C"),
            rel("C", 0.25, t, VIEWED, "A"),
            rel("B", 0.25 / 2**0.5, t, VIEWED, "C"),
            rel("C", 0.25 / 2**0.5, t, VIEWED, "B"),
        ],
    )


def test_removal_makes_no_co_visit_pairs() -> None:
    feed = Feed()
    feed("add_to_cart", "A", T0)
    feed("remove_from_cart", "A", T0 + 1)  # A now counts as removed: strength 0
    assert _covisit(feed("view", "B", T0 + 2)) == []
    assert _covisit(feed("remove_from_cart", "C", T0 + 3)) == []


def test_same_item_never_pairs_with_itself() -> None:
    feed = Feed()
    feed("view", "A", T0)
    assert feed("view", "A", T0 + 1) == [pop("A", 1.0, T0 + 1)]
    assert feed("purchase", "A", T0 + 2) == [pop("A", 5.0, T0 + 2)]


# --- bought deltas (hand-computed) ---------------------------------------------------


def test_bought_deltas_with_anchor_weights() -> None:
    feed = Feed(covisit=False)
    feed("view", "A", T0)
    feed("click", "B", T0 + 1 * MIN)

    # cart C: conversion 0.5 times anchor (view/click 0.5) = 0.25 into A's and B's lists
    t = T0 + 2 * MIN
    _same(
        feed("add_to_cart", "C", t),
        [
            rel("A", 0.25, t, BOUGHT, "C"),
            rel("B", 0.25, t, BOUGHT, "C"),
            pop("C", 3.0, t),
        ],
    )

    # purchase D: conversion 1.0; A, B anchor 0.5; C (cart) anchors 1.0 and, having been
    # carted itself (0.5), gets D back with 0.5 * 1.0
    t = T0 + 3 * MIN
    _same(
        feed("purchase", "D", t),
        [
            rel("A", 0.5, t, BOUGHT, "D"),
            rel("B", 0.5, t, BOUGHT, "D"),
            rel("C", 1.0, t, BOUGHT, "D"),
            rel("D", 0.5, t, BOUGHT, "C"),
            pop("D", 5.0, t),
        ],
    )

    # purchase C (carted before): D (purchase) anchors 1.0 and gets C back with 1.0 * 1.0
    t = T0 + 4 * MIN
    _same(
        feed("purchase", "C", t),
        [
            rel("A", 0.5, t, BOUGHT, "C"),
            rel("B", 0.5, t, BOUGHT, "C"),
            rel("D", 1.0, t, BOUGHT, "C"),
            rel("C", 1.0, t, BOUGHT, "D"),
            pop("C", 5.0, t),
        ],
    )
    assert feed.state.recent[-1] == RecentItem("C", "purchase", t)
    assert feed.state.purchased == ["D", "C"]


def test_removed_item_anchors_a_purchase_weakly() -> None:
    feed = Feed(covisit=False)
    feed("add_to_cart", "A", T0)
    feed("remove_from_cart", "A", T0 + 1)
    t = T0 + 2
    _same(feed("purchase", "B", t), [rel("A", 0.25, t, BOUGHT, "B"), pop("B", 5.0, t)])


def test_bought_window_is_one_week_inclusive() -> None:
    feed = Feed(covisit=False)
    feed("view", "A", T0)
    feed("view", "B", T0 + 1)
    t = T0 + 7 * DAY  # exactly a week after A, a week minus 1 ms after B
    _same(
        feed("purchase", "C", t),
        [
            rel("A", 0.5, t, BOUGHT, "C"),
            rel("B", 0.5, t, BOUGHT, "C"),
            pop("C", 5.0, t),
        ],
    )
    t2 = T0 + 7 * DAY + 2  # now over a week after A and B, but C is recent
    _same(
        feed("add_to_cart", "D", t2),
        [
            rel("C", 0.5, t2, BOUGHT, "D"),  # 0.5 conversion * 1.0 anchor
            rel("D", 0.5, t2, BOUGHT, "C"),  # C was purchased: 1.0 * 0.5
            pop("D", 3.0, t2),
        ],
    )


# --- wire forms ----------------------------------------------------------------------


def test_delta_wire_round_trip() -> None:
    for d in (pop("A", 1.0, T0), rel("A", 0.25, T0, BOUGHT, "B:ü")):
        assert tuple(orjson.loads(orjson.dumps(d))) == d


def test_state_round_trip_through_json() -> None:
    feed = Feed(recent_size=4)
    feed("view", "A", T0)
    feed("purchase", "B:1", T0 + 5)
    feed("click", "ü", T0 + 3)
    feed("remove_from_cart", "C", T0 + 7)
    state = feed.state
    back = UserState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert back == state
    assert back.recent_items() == ["C", "B:1", "ü", "A"]
    # the restored state behaves the same: a redelivery is still a no-op
    assert back.apply(Interaction("e1", "view", "u1", "Z", T0), 99, 4).rows() == []
    assert back.apply(Interaction("new", "view", "u1", "Z", T0), 2, 4).rows() == []


def test_empty_state_round_trip() -> None:
    assert UserState.from_dict(orjson.loads(orjson.dumps(UserState().to_dict()))) == UserState()
