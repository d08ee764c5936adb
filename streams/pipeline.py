"""The whole dataflow in one process, without Kafka or Redis.

Same transitions as the workers (user state, item deltas routed by item partition,
item-side folding, trending partials, published lists), applied one event at a time.
It is what offline evaluation replays, and the reference the integration tests
compare the workers' Redis output with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.events import CatalogItem, Interaction
from streams.blending import DEFAULT_WEIGHTS, BlendWeights, Rec
from streams.catalog import merge_record
from streams.experiments import from_settings
from streams.item_side import (
    BatchResult,
    Group,
    PartitionState,
    apply_groups,
    recategorize,
    route,
)
from streams.item_state import ItemState
from streams.partitioning import partition_for
from streams.recommend import Lists, Plan, item_list, plan, recommend, trending_list
from streams.settings import Settings
from streams.trending import Partial
from streams.user_state import BOUGHT, VIEWED, UserState


class LocalPipeline:
    """In-memory state of every partition, fed event by event."""

    def __init__(self, settings: Settings, weights: BlendWeights = DEFAULT_WEIGHTS) -> None:
        self.settings = settings
        self.weights = weights
        self.users: dict[str, UserState] = {}
        self.items: dict[str, ItemState] = {}
        self.parts: dict[int, PartitionState] = {}
        self.catalog: dict[str, dict[str, Any]] = {}
        self.offsets: dict[int, int] = defaultdict(lambda: -1)
        self.rules = settings.business_rules
        # Published item lists by (relation, item), dropped when the item's neighbours in
        # that relation change or any catalogue record arrives (availability filters
        # them): a user's list reads about 40, and most did not change since the last.
        self._item_lists: dict[tuple[str, str], list[list[Any]]] = {}

    def apply_catalog(self, item: CatalogItem) -> None:
        """Record an item's metadata (a late, older record does not undo a newer one)."""
        before = self.catalog.get(item.item_id)
        meta = merge_record(before, item)
        if meta is None:
            return
        self.catalog[item.item_id] = meta
        self._item_lists.clear()
        category = meta.get("category")
        if category and category != (before or {}).get("category"):
            part = self.parts.get(partition_for(item.item_id, self.settings.partitions))
            if part is not None:
                recategorize([(item.item_id, category)], part, self.items.get)

    def apply(self, event: Interaction) -> None:
        """Process one interaction through user side and item side."""
        for p, group in self.user_side(event).items():
            self._fold(p, [group])

    def user_side(self, event: Interaction) -> dict[int, Group]:
        """Fold one interaction into its user's state; its item-delta groups, per item
        partition, for :meth:`_fold`."""
        s = self.settings
        src = partition_for(event.user_id, s.partitions)
        self.offsets[src] += 1
        state = self.users.setdefault(event.user_id, UserState())
        deltas = state.apply(event, self.offsets[src], s.recent_size)
        return route(deltas, src, self.offsets[src], s.partitions)

    def apply_all(self, events: Iterable[CatalogItem | Interaction]) -> None:
        """Process a stream of catalog records and interactions in order."""
        for ev in events:
            if isinstance(ev, Interaction):
                self.apply(ev)
            else:
                self.apply_catalog(ev)

    def _fold(self, p: int, groups: list[Group]) -> BatchResult:
        s = self.settings
        part = self.parts.get(p)
        if part is None:
            part = self.parts[p] = PartitionState(Partial(s.trending_size))
        result = apply_groups(
            groups,
            part,
            self.items,
            self._category,
            s.half_life_s,
            s.neighbours_per_partition,
            list_bytes=s.neighbour_list_bytes,
        )
        for item, relations in result.relations.items():
            for relation in relations:
                self._item_lists.pop((relation, item), None)
        return result

    def _category(self, item: str) -> str | None:
        meta = self.catalog.get(item)
        return meta.get("category") if meta else None

    def _now_ts(self) -> int:
        return max((p.max_ts for p in self.parts.values()), default=0)

    # --- published lists -------------------------------------------------------------

    def item_list(self, relation: str, item_id: str) -> list[list[Any]]:
        """What the workers publish as ``relation`` list of ``item_id``."""
        known = self._item_lists.get((relation, item_id))
        if known is not None:
            return known
        state = self.items.get(item_id)
        if state is None or relation not in state.neighbours:
            return []
        s = self.settings
        lst = item_list(state, relation, self.catalog.get, s.item_list_size, s.half_life_s)
        self._item_lists[(relation, item_id)] = lst
        return lst

    def trending(self, category: str = "", kind: str = "t") -> list[list[Any]]:
        """Global (``""``) or per-category trending (``"t"``) or popular (``"p"``) list."""
        s = self.settings
        partials: Mapping[int, dict[str, Any]] = {
            p: part.partial.export([category]) for p, part in self.parts.items()
        }
        return trending_list(
            partials,
            category,
            kind,
            s.trending_size,
            self.catalog.get,
            self._now_ts(),
            s.half_life_s,
        )

    def lists_for(self, p: Plan) -> Lists:
        """The published lists a plan looks up."""
        lists = Lists(trending=self.trending(), popular=self.trending(kind="p"))
        for a in p.anchors:
            for rel, target in ((BOUGHT, lists.bought), (VIEWED, lists.viewed)):
                lst = self.item_list(rel, a)
                if lst:
                    target[a] = lst
        for c in p.categories:
            lst = self.trending(c)
            if lst:
                lists.category[c] = lst
        return lists

    def recommend(self, user_id: str, k: int | None = None) -> list[Rec]:
        """The list the workers publish for ``user_id`` once the log is drained."""
        k = self.settings.list_size if k is None else k
        state = self.users.get(user_id)
        if state is None:
            return []
        pl = plan(state, self.catalog.get)
        # Under an A/B split the user's arm ranks, exactly as in the workers.
        weights = (
            from_settings(self.settings).arm(user_id).weights
            if self.settings.split
            else self.weights
        )
        lists = self.lists_for(pl)
        s = self.settings
        return recommend(state, pl, lists, self.catalog.get, k, weights, self.rules, s.category_cap)
