"""Item-side processing of one item partition: fold delta groups into item states.

The ingest side ships, per ingest batch and per item partition, one message: a list of
groups, one per interaction, ``[source_partition, source_offset, ts, item, interest,
ahead, back]`` (see :class:`streams.user_state.Deltas`; a partition gets ``interest``
and ``ahead`` only when it owns ``item``, and of ``back`` only the items it owns).
Every item remembers the last source offset applied per source partition, so a group
delivered again (after a restart) changes nothing, and the record that holds an item's
state also holds its de-duplication: both are written and recovered together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from streams.decay import NEG_INF
from streams.item_state import UNBOUNDED, ItemState
from streams.partitioning import partition_for
from streams.trending import Partial
from streams.user_state import WEIGHT_GRID, Deltas

# [source_partition, source_offset, ts, item, interest, ahead, back]; a list once decoded.
Group = tuple[int, int, int, str, float, dict[str, list[Any]], dict[str, list[Any]]]
_NO_PAIRS: dict[str, list[Any]] = {}


def route(deltas: Deltas, sp: int, off: int, partitions: int) -> dict[int, Group]:
    """The groups of one interaction's updates, per item partition."""
    groups: dict[int, Group] = {}
    item, ts = deltas.item, deltas.ts
    if deltas.interest > 0 or deltas.ahead:
        groups[partition_for(item, partitions)] = (
            sp,
            off,
            ts,
            item,
            deltas.interest,
            deltas.ahead,
            {},
        )
    for relation, flat in deltas.back.items():
        for i in range(0, len(flat), 2):
            target = flat[i]
            p = partition_for(target, partitions)
            group = groups.get(p)
            if group is None:
                group = groups[p] = (sp, off, ts, item, 0.0, _NO_PAIRS, {})
            pairs = group[6].get(relation)
            if pairs is None:
                pairs = group[6][relation] = []
            pairs += (target, flat[i + 1])
    return groups


def encode_groups(groups: Iterable[Group]) -> bytes:
    """Wire form of one item-delta message."""
    return orjson.dumps(list(groups))


def encode_messages(groups: Sequence[Group], max_bytes: int) -> list[bytes]:
    """Wire messages of one item partition's groups, in order, none over ``max_bytes``.

    A batch's groups usually fit one message. A large batch (catching up), long ids or
    a small partition count can make that message larger than the producer or broker
    accepts; it is then halved until every part fits. One group (one interaction: at
    most about 80 pairs, some 20 KB with 256-character ids) is never split.
    """
    raw = encode_groups(groups)
    if len(raw) <= max_bytes or len(groups) <= 1:
        return [raw]
    half = len(groups) // 2
    return encode_messages(groups[:half], max_bytes) + encode_messages(groups[half:], max_bytes)


def decode_groups(raw: bytes) -> list[Any]:
    """Inverse of :func:`encode_groups`; groups stay as decoded lists."""
    groups: list[Any] = orjson.loads(raw)
    return groups


@dataclass(slots=True)
class PartitionState:
    """Per item partition: its top items and the latest event time it has seen.

    Its changelog record holds the event time only: the workers write each category's
    lists as a record of its own (:class:`streams.trending.Tops`), so that a record's
    size does not grow with the number of categories. A record written before that
    holds every category's lists; they are read into memory and listed in ``unsaved``,
    to be written as records of their own with the next batch.
    """

    partial: Partial
    max_ts: int = 0
    unsaved: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog: without the categories' lists."""
        return {"p": {"k": self.partial.k, "all": {}}, "t": self.max_ts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionState:
        """Inverse of :meth:`to_dict`; also reads the earlier form, lists included."""
        partial = Partial.from_dict(data["p"])
        return cls(partial, data["t"], set(partial.trending))


@dataclass(slots=True)
class BatchResult:
    """What a batch touched: item states, changed relations, categories to republish."""

    states: dict[str, ItemState] = field(default_factory=dict)
    relations: dict[str, set[str]] = field(default_factory=dict)
    categories: set[str] = field(default_factory=set)
    skipped: int = 0


def apply_groups(
    groups: Iterable[Sequence[Any]],
    part: PartitionState,
    items: MutableMapping[str, ItemState] | Callable[[str], ItemState],
    category_of: Callable[[str], str | None],
    half_life_s: float,
    neighbours_kept: int,
    result: BatchResult | None = None,
    list_bytes: int = UNBOUNDED,
) -> BatchResult:
    """Apply delta groups in order; ``items`` returns (or creates) an item's state.
    Each neighbour list keeps at most ``neighbours_kept`` neighbours and ``list_bytes``
    of entries (:func:`streams.item_state.list_bytes`).

    Items with popularity deltas are offered to the partition's top-K even when the
    delta was a duplicate: offering an unchanged score is a no-op, and it repairs a
    top-K whose last update was lost with a crash.
    """
    get = items if callable(items) else partial(_get_or_create, items)
    result = BatchResult() if result is None else result
    states, relations = result.states, result.relations
    popular: set[str] = set()
    max_ts = part.max_ts

    for group in groups:
        if len(group) == 3:
            group = _from_rows(*group)  # written by an older ingest
        sp, off, ts, item, interest, ahead, back = group
        # The states this group reaches; None for one it reached in an earlier delivery.
        reached: dict[str, ItemState | None] = {}
        if interest > 0 or ahead:
            if interest > 0:
                popular.add(item)
            state = reached[item] = _fresh(states, get, item, sp, off)
            if state is None:
                result.skipped += (interest > 0) + sum(len(f) for f in ahead.values()) // 2
            else:
                if interest > 0:
                    state.popularity(interest, ts, half_life_s, sp)
                for relation, flat in ahead.items():
                    if type(flat[1]) is float:
                        flat = _in_units(flat)  # written by an older ingest
                    state.gain(relation, sp, flat, neighbours_kept, list_bytes)
                    _touched(relations, item, relation)
        for relation, flat in back.items():
            if type(flat[1]) is float:
                flat = _in_units(flat)
            it = iter(flat)
            for target, weight in zip(it, it, strict=True):
                state = reached.get(target, _UNSEEN)
                if state is _UNSEEN:
                    state = reached[target] = _fresh(states, get, target, sp, off)
                if state is None:
                    result.skipped += 1
                    continue
                state.neighbour(relation, sp, item, weight, neighbours_kept, list_bytes)
                _touched(relations, target, relation)
        for state in reached.values():
            if state is not None:
                state.applied[sp] = off
                if ts > state.last_ts:
                    state.last_ts = ts
                if ts > max_ts:
                    max_ts = ts
    part.max_ts = max_ts
    for item in sorted(popular):
        s = result.states[item]
        category = category_of(item)
        part.partial.offer(item, category, s.trend, s.count)
        result.categories.update(("", category) if category else ("",))
    return result


def _get_or_create(items: MutableMapping[str, ItemState], item: str) -> ItemState:
    # Not ``setdefault(item, ItemState())``: that builds a state, and its dicts, for every
    # item already there.
    state = items.get(item)
    if state is None:
        state = items[item] = ItemState()
    return state


_UNSEEN = ItemState()  # marker: not reached yet by the group at hand


def _touched(relations: dict[str, set[str]], item: str, relation: str) -> None:
    rels = relations.get(item)
    if rels is None:
        relations[item] = {relation}
    else:
        rels.add(relation)


def _fresh(
    states: dict[str, ItemState], get: Callable[[str], ItemState], item: str, sp: int, off: int
) -> ItemState | None:
    """The item's state, or None when the interaction at ``off`` reached it before."""
    state = states.get(item)
    if state is None:
        state = states[item] = get(item)
    return None if state.seen(sp, off) else state


def _in_units(flat: Sequence[Any]) -> list[Any]:
    """Pairs whose weights an older ingest wrote as floats (multiples of 2**-24), with
    their weights in units of 2**-24, as the current one writes them."""
    return [x if i % 2 == 0 else round(x * WEIGHT_GRID) for i, x in enumerate(flat)]


def _from_rows(sp: int, off: int, rows: Sequence[Sequence[Any]]) -> Group:
    """A group of the earlier wire form, one row ``[item, weight, ts, relation, other]``
    per update, in the current form: the interaction's item is on every row."""
    common: set[str] | None = None
    for item, _, _, relation, other in rows:
        sides = {item} if relation is None else {item, other}
        common = sides if common is None else common & sides
    item = min(common) if common else rows[0][0]
    interest = 0.0
    ahead: dict[str, list[Any]] = {}
    back: dict[str, list[Any]] = {}
    for target, weight, _, relation, other in rows:
        if relation is None:
            interest += weight
        elif target == item:
            ahead.setdefault(relation, []).extend((other, weight))
        else:
            back.setdefault(relation, []).extend((target, weight))
    return (sp, off, rows[0][2], item, interest, ahead, back)


def recategorize(
    moves: Iterable[Sequence[str | None]],
    part: PartitionState,
    states: Callable[[str], ItemState | None],
) -> set[str]:
    """Offer items again under their (new) catalogue category; returns the categories to
    republish: those whose lists changed, each item's old category, whose published
    lists drop the item (``streams.recommend.trending_list`` keeps a category's items
    only), and each offered item's new category, changed or not: a move redone after a
    crash between the table writes and the partials send finds the item already in the
    new category's lists, and that category's partial must still be sent. A move is
    ``(item, category)`` or ``(item, category, old category)``.

    An item is offered to its category's top lists when its popularity changes. If its
    catalogue record arrives, or changes category, after its last interaction, nothing
    would offer it again: the per-category lists would depend on whether the catalogue
    or the interactions were read first, and a replay could differ from the live run.
    Re-offering on every category change makes the final lists independent of that order.
    """
    changed: set[str] = set()
    for item, category, *old in moves:
        if old and old[0] and old[0] != category:
            changed.add(old[0])
        if not item:
            continue
        state = states(item)
        if state is None or not category or state.trend == NEG_INF:
            continue
        changed |= part.partial.offer(item, category, state.trend, state.count)
        changed.add(category)
    return changed
