"""Per-user state and its transitions: recent history in event time, purchases, co-pairs.

A user's state lives on the partition that owns the user. Applying an interaction
returns the item-side deltas it causes (popularity and co-visitation pairs); those are
shipped to the partitions that own the items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, REMOVE_FROM_CART, VIEW, Interaction

# How much an interaction says about interest in the item (popularity, anchors).
INTEREST = {VIEW: 1.0, CLICK: 1.0, ADD_TO_CART: 3.0, PURCHASE: 5.0, REMOVE_FROM_CART: 0.0}
# How strongly an interaction counts as buying the item ("also bought").
CONVERSION = {ADD_TO_CART: 0.5, PURCHASE: 1.0}
# How strongly an earlier item anchors a later purchase.
ANCHOR = {VIEW: 0.5, CLICK: 0.5, ADD_TO_CART: 1.0, PURCHASE: 1.0, REMOVE_FROM_CART: 0.25}
# How much an interaction says about taste when pairing items ("also viewed"): a look is
# evidence of the user's area of interest, a cart or a purchase stronger evidence.
STRENGTH = {VIEW: 0.5, CLICK: 0.5, ADD_TO_CART: 1.0, PURCHASE: 1.0, REMOVE_FROM_CART: 0.0}
# A co-visitation pair ``d`` steps apart in the user's history counts ``1 / (d + 1) ** 0.5``.
DISTANCE_POWER = 0.5
_RANK = {REMOVE_FROM_CART: 0, VIEW: 1, CLICK: 2, ADD_TO_CART: 3, PURCHASE: 4}
# Pair weights travel and add up as integers, in units of 2**-24. Neighbour scores are
# sums of them, and the item side adds a neighbour's weights in an order that depends on
# batching (live or replay, one worker or several); integer sums are exact at any size,
# so the order cannot change a score, nor break a tie differently. Integers also encode
# in a third fewer bytes than the floats they stand for, and several times faster (the
# item side rewrites a busy item's whole state to its changelog in every batch).
WEIGHT_GRID = 2**24

BUY_WINDOW_MS = 7 * 24 * 60 * 60 * 1000  # bought within a week of looking at it
PURCHASED_KEPT = 200
EVENT_IDS_KEPT = 32

VIEWED = "viewed"
BOUGHT = "bought"


@dataclass(slots=True)
class RecentItem:
    """An item in a user's recent history: strongest interaction and last event time."""

    item_id: str
    type: str
    ts: int


# One item-side update, ``(item_id, weight, ts, relation, other)``: ``relation`` is
# ``None`` for a popularity update of ``item_id``, else the item ``other`` gained
# ``weight`` (units of 2**-24) in the ``relation`` list of ``item_id``. The flat view of
# :class:`Deltas`.
Delta = tuple[str, float, int, str | None, str | None]


def delta(
    item_id: str, weight: float, ts: int, relation: str | None = None, other: str | None = None
) -> Delta:
    """A :data:`Delta` with its fields named."""
    return (item_id, weight, ts, relation, other)


@dataclass(slots=True)
class Deltas:
    """The item-side updates one interaction causes, all at its event time ``ts``.

    ``interest`` adds to the popularity of ``item``. ``ahead[relation]`` lists the
    neighbours ``item`` gains, ``back[relation]`` the items that gain ``item`` as a
    neighbour, both flat: ``[other, weight, other, weight, ...]``, each weight an integer
    in units of 2**-24 (:data:`WEIGHT_GRID`). Every pair an interaction causes has its
    item on one side, so this holds them all, and it is the form that travels: one string
    and one integer per update (an event causes about 27).
    """

    item: str
    ts: int
    interest: float = 0.0
    ahead: dict[str, list[Any]] = field(default_factory=dict)
    back: dict[str, list[Any]] = field(default_factory=dict)

    def rows(self) -> list[Delta]:
        """The updates one per tuple: ahead, then back, then popularity."""
        item, ts = self.item, self.ts
        out: list[Delta] = []
        for relation, flat in self.ahead.items():
            out += [(item, w, ts, relation, o) for o, w in zip(flat[::2], flat[1::2], strict=True)]
        for relation, flat in self.back.items():
            out += [(t, w, ts, relation, item) for t, w in zip(flat[::2], flat[1::2], strict=True)]
        if self.interest > 0:
            out.append((item, self.interest, ts, None, None))
        return out


@dataclass(slots=True)
class UserState:
    """What the system remembers about one user."""

    recent: list[RecentItem] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    last_offset: int = -1
    last_ts: int = 0

    def seen(self, event_id: str, offset: int) -> bool:
        """True when this event was applied already (redelivery or duplicate send)."""
        return offset <= self.last_offset or event_id in self.event_ids

    def apply(self, event: Interaction, offset: int, recent_size: int) -> Deltas:
        """Apply one interaction; returns the item-side updates, none for a duplicate."""
        deltas = Deltas(event.item_id, event.ts)
        if self.seen(event.event_id, offset):
            return deltas
        self.last_offset = offset
        self.event_ids.append(event.event_id)
        del self.event_ids[:-EVENT_IDS_KEPT]
        self._covisit_deltas(event, deltas)
        self._bought_deltas(event, deltas)
        deltas.interest = INTEREST[event.type]
        self._remember(event, recent_size)
        return deltas

    def _covisit_deltas(self, event: Interaction, deltas: Deltas) -> None:
        """Co-visitation ("also viewed"): the item paired with every recent item, both ways.

        A pair ``d`` steps back in the history (0 = the latest other item) counts
        ``STRENGTH[new] * STRENGTH[prev] / (d + 1) ** DISTANCE_POWER``, whatever the time
        between them: the order of a user's own history carries the signal (measured,
        docs/MODELS.md). Both ways weigh the same, so ahead and back share one list. In
        units of 2**-24, rounded.
        """
        item = event.item_id
        strength = STRENGTH[event.type]
        if strength <= 0:
            return
        pairs: list[Any] = []
        d = 0
        for prev in reversed(self.recent):
            if prev.item_id == item:
                continue
            w = round(strength * STRENGTH[prev.type] / (d + 1) ** DISTANCE_POWER * WEIGHT_GRID)
            d += 1
            if w > 0:
                pairs += (prev.item_id, w)
        if pairs:
            deltas.ahead[VIEWED] = deltas.back[VIEWED] = pairs

    def _bought_deltas(self, event: Interaction, deltas: Deltas) -> None:
        """Also bought: a cart or purchase paired with what the user saw in the week before."""
        item, ts = event.item_id, event.ts
        conversion = CONVERSION.get(event.type)
        if conversion is None:
            return
        ahead: list[Any] = []
        back: list[Any] = []
        for prev in self.recent:
            if prev.item_id == item:
                continue
            if abs(ts - prev.ts) <= BUY_WINDOW_MS:
                back += (prev.item_id, round(conversion * ANCHOR[prev.type] * WEIGHT_GRID))
                prev_conversion = CONVERSION.get(prev.type)
                if prev_conversion is not None:
                    ahead += (prev.item_id, round(prev_conversion * conversion * WEIGHT_GRID))
        if ahead:
            deltas.ahead[BOUGHT] = ahead
        if back:
            deltas.back[BOUGHT] = back

    def _remember(self, event: Interaction, recent_size: int) -> None:
        self.last_ts = max(self.last_ts, event.ts)
        if event.type == PURCHASE and event.item_id not in self.purchased:
            self.purchased.append(event.item_id)
            del self.purchased[:-PURCHASED_KEPT]
        kept, ts = event.type, event.ts
        for i, prev in enumerate(self.recent):
            if prev.item_id == event.item_id:
                # A removal from the cart resets the item's type, unless it is older than
                # what the item's type came from (it arrived late).
                if _RANK[prev.type] > _RANK[kept] and (
                    event.type != REMOVE_FROM_CART or event.ts < prev.ts
                ):
                    kept = prev.type
                ts = max(ts, prev.ts)  # a late event does not make the item older
                del self.recent[i]
                break
        entry = RecentItem(event.item_id, kept, ts)
        # Keep event-time order even when events arrive slightly out of order.
        pos = len(self.recent)
        while pos > 0 and self.recent[pos - 1].ts > ts:
            pos -= 1
        self.recent.insert(pos, entry)
        del self.recent[:-recent_size]

    def recent_items(self) -> list[str]:
        """Recent item ids, most recent first."""
        return [r.item_id for r in reversed(self.recent)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog."""
        return {
            "r": [[r.item_id, r.type, r.ts] for r in self.recent],
            "p": self.purchased,
            "e": self.event_ids,
            "o": self.last_offset,
            "t": self.last_ts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            recent=[RecentItem(i, t, ts) for i, t, ts in data["r"]],
            purchased=list(data["p"]),
            event_ids=list(data["e"]),
            last_offset=data["o"],
            last_ts=data["t"],
        )
