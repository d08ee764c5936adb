"""Join impressions with the clicks, carts and purchases they led to (one user partition).

An interaction is attributed to a shown list by its ``request_id``; without one, a
click, cart or purchase of a shown item within ``window_ms`` (event time) after the
list was shown is attributed to the most recent such list of that user. Impressions
and interactions arrive on two topics whose relative order is not guaranteed, so an
interaction that names an unknown list, or finds none, is held until the list arrives
or the window has passed. One without a ``request_id`` waits, besides, until the
impressions have reached its time: which list is "the most recent before it" must not
depend on whether a later-shown list arrived before or after it.

The state emits *records*, small JSON-ready lists aggregated elsewhere:

- ``["imp", variant, [source, ...]]``: a list was shown (the source of every slot);
- ``["clk", variant, source, first]``: a slot was clicked for the first time;
  ``first`` is true for the list's first clicked slot;
- ``["cnv", variant]``: the list's first purchase;
- ``["fin", variant, clicked, ts]``: the list's window closed, clicked or not.

Time is event time: the watermark is the smaller of the latest times seen on each of
the two topics, so a list is closed only once both inputs have moved past its window.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, VIEW, Impression, Interaction

Record = list[Any]
NO_VARIANT = "none"
UNKNOWN_SOURCE = "unknown"
# Types that mean "the user went for a shown item". A view counts only when it names the
# list (request_id): an unattributed product view is usually not a click-through.
ENGAGED = frozenset({CLICK, ADD_TO_CART, PURCHASE})
SOURCE_NAMES = {"b": "bought", "v": "viewed", "c": "category", "t": "trending"}
IMPRESSIONS, INTERACTIONS = "imp", "int"
# Bounds of one user's part of the state, which is one changelog record, under the
# producers' 1 MB limit even with the longest ids and impressions: lists open at once, by
# count and by encoded size (the oldest is closed early), and interactions waiting for a
# list (the oldest goes; each is at most about 3 KB).
MAX_OPEN_PER_USER = 50
MAX_OPEN_BYTES_PER_USER = 600_000
MAX_WAITING_PER_USER = 50


def source_of(reason: str) -> str:
    """The candidate source of a reason code: ``b:42`` -> ``bought``, ``t`` -> ``trending``."""
    kind = reason.partition(":")[0]
    return SOURCE_NAMES.get(kind, kind or UNKNOWN_SOURCE)


@dataclass(slots=True)
class Shown:
    """A list shown and not yet closed: which slots were clicked, whether it converted."""

    request_id: str
    user_id: str
    variant: str
    items: list[str]
    sources: list[str]
    ts: int
    clicked: list[int] = field(default_factory=list)
    converted: bool = False
    seq: int = -1  # arrival order within the partition (-1: saved before it was kept)
    size: int = field(default=0, compare=False)  # encoded size when shown (not saved)

    def to_list(self) -> list[Any]:
        return [self.request_id, self.user_id, self.variant, self.items, self.sources, self.ts,
                self.clicked, self.converted, self.seq]  # fmt: skip

    @classmethod
    def from_list(cls, v: list[Any]) -> Shown:
        seq = v[8] if len(v) > 8 else -1
        return cls(v[0], v[1], v[2], list(v[3]), list(v[4]), v[5], list(v[6]), bool(v[7]), seq)


@dataclass(slots=True)
class Held:
    """An interaction waiting for the list it belongs to."""

    user_id: str
    item_id: str
    type: str
    ts: int
    request_id: str | None

    def to_list(self) -> list[Any]:
        return [self.user_id, self.item_id, self.type, self.ts, self.request_id]


# A click without request id that came before the impressions reached its time, as
# ``(ts, user_id, item_id, type)``: a heap entry (no None in it, so entries compare).
Early = tuple[int, str, str, str]


@dataclass(slots=True)
class JoinState:
    """Open lists, held interactions, watermarks and applied offsets of one partition."""

    window_ms: int
    shown: dict[str, Shown] = field(default_factory=dict)  # by request_id, arrival order
    held: dict[str, list[Held]] = field(default_factory=dict)  # by user
    latest: dict[str, int] = field(default_factory=dict)  # topic kind -> max event time
    offsets: dict[str, int] = field(default_factory=dict)  # topic kind -> last offset applied
    swept: int = -1  # horizon of the last sweep of held interactions
    by_user: dict[str, list[str]] = field(default_factory=dict)  # open request ids per user
    early: list[Early] = field(default_factory=list)  # heap, by event time
    early_count: dict[str, int] = field(default_factory=dict)  # entries of ``early`` per user
    dirty: set[str] = field(default_factory=set)  # users whose record changed since saved
    next_seq: int = 0  # arrival number of the next list shown
    open_bytes: dict[str, int] = field(default_factory=dict)  # per user, of open lists

    def __post_init__(self) -> None:
        if not self.by_user:
            for rid, s in self.shown.items():
                self.by_user.setdefault(s.user_id, []).append(rid)
        for s in self.shown.values():
            s.size = s.size or len(orjson.dumps(s.to_list()))
            self.open_bytes[s.user_id] = self.open_bytes.get(s.user_id, 0) + s.size
        if not self.early_count:
            for e in self.early:
                self.early_count[e[1]] = self.early_count.get(e[1], 0) + 1

    # --- inputs --------------------------------------------------------------------------

    def fresh(self, kind: str, offset: int) -> bool:
        """False for a message already applied (redelivered after a restart)."""
        if offset <= self.offsets.get(kind, -1):
            return False
        self.offsets[kind] = offset
        return True

    def impression(self, imp: Impression) -> list[Record]:
        """A list was shown; returns its records and those of interactions it unblocks."""
        if imp.request_id in self.shown:
            return self._advance(IMPRESSIONS, imp.ts)  # duplicate event: counted once
        sources = [source_of(s) for s in (imp.sources or ())]
        sources += [UNKNOWN_SOURCE] * (len(imp.items) - len(sources))
        shown = Shown(
            imp.request_id, imp.user_id, imp.variant or NO_VARIANT, list(imp.items),
            sources[: len(imp.items)], imp.ts, seq=self.next_seq,
        )  # fmt: skip
        self.next_seq += 1
        shown.size = len(orjson.dumps(shown.to_list()))
        self.shown[imp.request_id] = shown
        open_lists = self.by_user.setdefault(imp.user_id, [])
        open_lists.append(imp.request_id)
        user = imp.user_id
        self.open_bytes[user] = self.open_bytes.get(user, 0) + shown.size
        self.dirty.add(user)
        out: list[Record] = [["imp", shown.variant, shown.sources]]
        while len(open_lists) > 1 and (
            len(open_lists) > MAX_OPEN_PER_USER or self.open_bytes[user] > MAX_OPEN_BYTES_PER_USER
        ):
            oldest = self.shown.pop(open_lists[0])
            self._forget(oldest)
            out.append(["fin", oldest.variant, 1 if oldest.clicked else 0, oldest.ts])
        waiting = self.held.pop(imp.user_id, [])
        for h in waiting:
            if self._match(h) is shown:
                out += self._engage(shown, h)
            else:
                self.held.setdefault(imp.user_id, []).append(h)
        return out + self._advance(IMPRESSIONS, imp.ts)

    def interaction(self, ev: Interaction) -> list[Record]:
        """A user acted on an item; attribute it now, or hold it until its list shows up."""
        out: list[Record] = []
        if not ev.request_id and ev.type in ENGAGED:
            waiting = self.early_count.get(ev.user_id, 0)
            if ev.ts > self.latest.get(IMPRESSIONS, -1) and waiting < MAX_WAITING_PER_USER:
                # A list shown before it may still be on its way: wait for the impressions.
                heapq.heappush(self.early, (ev.ts, ev.user_id, ev.item_id, ev.type))
                self.early_count[ev.user_id] = waiting + 1
                self.dirty.add(ev.user_id)
            else:
                out += self._attribute(Held(ev.user_id, ev.item_id, ev.type, ev.ts, None))
        elif ev.request_id and (ev.type in ENGAGED or ev.type == VIEW):
            out += self._attribute(Held(ev.user_id, ev.item_id, ev.type, ev.ts, ev.request_id))
        return out + self._advance(INTERACTIONS, ev.ts)

    def _attribute(self, h: Held) -> list[Record]:
        """Join ``h`` to its list now, or hold it until the list arrives."""
        target = self._match(h)
        if target is None:
            held = self.held.setdefault(h.user_id, [])
            held.append(h)
            if len(held) > MAX_WAITING_PER_USER:
                del held[0]
            self.dirty.add(h.user_id)
            return []
        return self._engage(target, h)

    # --- joining -------------------------------------------------------------------------

    def _match(self, h: Held) -> Shown | None:
        if h.request_id is not None:
            # Within the window too: whether a late click still finds its list open
            # depends on how the two topics interleave; the window does not.
            shown = self.shown.get(h.request_id)
            if (
                shown is not None
                and shown.user_id == h.user_id
                and h.item_id in shown.items
                and shown.ts <= h.ts <= shown.ts + self.window_ms
            ):
                return shown
            return None
        best: Shown | None = None
        for rid in self.by_user.get(h.user_id, ()):
            s = self.shown[rid]
            if (
                s.ts <= h.ts <= s.ts + self.window_ms
                and h.item_id in s.items
                and (best is None or s.ts > best.ts)
            ):
                best = s
        return best

    def _engage(self, shown: Shown, h: Held) -> list[Record]:
        out: list[Record] = []
        self.dirty.add(shown.user_id)
        slot = shown.items.index(h.item_id)
        if slot not in shown.clicked:
            first = not shown.clicked
            shown.clicked.append(slot)
            out.append(["clk", shown.variant, shown.sources[slot], first])
        if h.type == PURCHASE and not shown.converted:
            shown.converted = True
            out.append(["cnv", shown.variant])
        return out

    # --- closing -------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        """Event time both inputs have passed (-1 until both were seen)."""
        if len(self.latest) < 2:
            return -1
        return min(self.latest.values())

    def _advance(self, kind: str, ts: int) -> list[Record]:
        if ts <= self.latest.get(kind, -1):
            return []
        self.latest[kind] = ts
        out: list[Record] = []
        if kind == IMPRESSIONS:  # before any list closes: one of them may be theirs
            while self.early and self.early[0][0] <= ts:
                e_ts, user, item, type_ = heapq.heappop(self.early)
                self._early_done(user)
                out += self._attribute(Held(user, item, type_, e_ts, None))
        horizon = self.watermark - self.window_ms
        # Arrival order is close to event-time order; stopping at the first open list
        # keeps this O(closed), at the cost of closing a late list a little late.
        for rid in list(self.shown):
            s = self.shown[rid]
            if s.ts >= horizon:
                break
            del self.shown[rid]
            self._forget(s)
            out.append(["fin", s.variant, 1 if s.clicked else 0, s.ts])
        # Held interactions are swept in steps of a quarter window: amortised O(1) per
        # event, and holding one a little longer changes nothing.
        if horizon - self.swept >= self.window_ms // 4:
            self.swept = horizon
            kept = {u: [h for h in hs if h.ts >= horizon] for u, hs in self.held.items()}
            self.dirty.update(u for u, hs in kept.items() if len(hs) != len(self.held[u]))
            self.held = {u: hs for u, hs in kept.items() if hs}
        return out

    def _early_done(self, user: str) -> None:
        left = self.early_count.pop(user, 1) - 1
        if left > 0:
            self.early_count[user] = left
        self.dirty.add(user)

    def _forget(self, s: Shown) -> None:
        self.dirty.add(s.user_id)
        left = self.open_bytes.pop(s.user_id, 0) - s.size
        if left > 0:
            self.open_bytes[s.user_id] = left
        rids = self.by_user.get(s.user_id, [])
        if s.request_id in rids:
            rids.remove(s.request_id)
        if not rids:
            self.by_user.pop(s.user_id, None)

    # --- persistence ---------------------------------------------------------------------
    #
    # Saved as one small header per partition and one record per user with anything open
    # or waiting: one record for the whole partition grew with the traffic of a window
    # (about 1 KB per open list) past the producers' 1 MB limit.

    def header(self) -> dict[str, Any]:
        """The partition's own part: window, watermarks, offsets applied, sweep horizon."""
        return {
            "w": self.window_ms, "l": self.latest, "o": self.offsets, "x": self.swept,
            "q": self.next_seq,
        }  # fmt: skip

    def take_dirty(self) -> dict[str, dict[str, Any] | None]:
        """The records of the users changed since the last call; ``None`` for a user with
        nothing left (delete the record)."""
        users, self.dirty = self.dirty, set()
        early: dict[str, list[list[Any]]] = {}
        if any(u in self.early_count for u in users):
            for e in self.early:
                if e[1] in users:
                    early.setdefault(e[1], []).append(list(e))
        out: dict[str, dict[str, Any] | None] = {}
        for user in users:
            shown = [self.shown[rid].to_list() for rid in self.by_user.get(user, ())]
            held = [h.to_list() for h in self.held.get(user, ())]
            mine = early.get(user, [])
            out[user] = {"s": shown, "h": held, "e": mine} if shown or held or mine else None
        return out

    @classmethod
    def from_records(cls, header: dict[str, Any], users: Iterable[dict[str, Any]]) -> JoinState:
        """Inverse of :meth:`header` and :meth:`take_dirty`: lists in the order they
        arrived, as the live state holds them (lists close in that order).

        A header of the earlier form (the whole partition in one record, lists in arrival
        order, without numbers) carries its lists and interactions itself; every user in
        it is marked changed, so that the next save writes their records before the header
        that replaces it."""
        parts = [header, *users]
        shown = [Shown.from_list(v) for part in parts for v in part.get("s", ())]
        for n, s in enumerate(shown):
            if s.seq < 0:  # the earlier form: its order is the arrival order
                s.seq = n - len(shown)
        shown.sort(key=lambda s: s.seq)
        held: dict[str, list[Held]] = {}
        for part in parts:
            for v in part.get("h", ()):
                held.setdefault(v[0], []).append(Held(*v))
        early: list[Early] = [(e[0], e[1], e[2], e[3]) for part in parts for e in part.get("e", ())]
        heapq.heapify(early)
        state = cls(
            header["w"], {s.request_id: s for s in shown}, held, dict(header["l"]),
            dict(header["o"]), header["x"], early=early,
            next_seq=header.get("q", max((s.seq + 1 for s in shown), default=0)),
        )  # fmt: skip
        if any(k in header for k in ("s", "h", "e")):
            state.dirty.update(s.user_id for s in shown)
            state.dirty.update(held)
            state.dirty.update(state.early_count)
        return state

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form (table changelog)."""
        return {
            "w": self.window_ms,
            "s": [s.to_list() for s in self.shown.values()],
            "h": [h.to_list() for hs in self.held.values() for h in hs],
            "l": self.latest,
            "o": self.offsets,
            "x": self.swept,
            "e": [list(e) for e in self.early],
            "q": self.next_seq,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JoinState:
        """Inverse of :meth:`to_dict` (the whole state in one record), nothing to save."""
        state = cls.from_records(d, [])
        state.dirty.clear()
        return state
