"""Build and publish users' lists: one Redis read and one pipelined write per batch of users.

Item-side lists are owned by other partitions, so they are read from the serving copy
in Redis (never from a local Table, which would hold only this worker's partitions).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from agents.publisher import Publisher, Write
from streams.blending import BlendWeights, blend
from streams.serving import encode_user
from streams.settings import Settings
from streams.user_state import BOUGHT, VIEWED, UserState

ANCHORS = 10  # recent items whose lists feed a user's list
CATEGORIES = 3  # recent categories whose trending lists feed a user's list


class UserLists:
    """Computes user lists from user state plus the serving copy of item-side lists."""

    def __init__(
        self,
        publisher: Publisher,
        settings: Settings,
        catalog: Callable[[str], Mapping[str, Any] | None],
        weights: BlendWeights = BlendWeights(),
    ) -> None:
        self.publisher = publisher
        self.settings = settings
        self.catalog = catalog
        self.weights = weights
        # user -> (wall-clock deadline, items of the last write): re-check once after
        # settle_s, when the item side has folded in this user's own events.
        self.settling: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _available(self, item: str) -> bool:
        meta = self.catalog(item)
        return meta is None or (meta.get("in_stock", True) and not meta.get("deleted", False))

    def _categories(self, recent: list[str]) -> list[str]:
        cats: list[str] = []
        for item in recent:
            meta = self.catalog(item)
            cat = meta.get("category") if meta else None
            if cat and cat not in cats:
                cats.append(cat)
                if len(cats) == CATEGORIES:
                    break
        return cats

    async def build(self, users: Mapping[str, UserState]) -> dict[str, bytes]:
        """Encoded records of ``users``, from one MGET of the lists they need."""
        keys = self.publisher.keys
        wanted: dict[str, tuple[str, str]] = {}  # redis key -> (relation or cat, id)
        plans: dict[str, tuple[list[str], list[str]]] = {}
        for uid, state in users.items():
            recent = state.recent_items()[:ANCHORS]
            cats = self._categories(recent)
            plans[uid] = (recent, cats)
            for a in recent:
                wanted[keys.bought(a)] = (BOUGHT, a)
                wanted[keys.viewed(a)] = (VIEWED, a)
            for c in cats:
                wanted[keys.trending(c)] = ("cat", c)
        wanted[keys.trending()] = ("cat", "")
        names = list(wanted)
        lists: dict[str, dict[str, Any]] = {BOUGHT: {}, VIEWED: {}, "cat": {}}
        for name, raw in zip(names, await self.publisher.mget(names), strict=True):
            if raw is not None:
                kind, ident = wanted[name]
                lists[kind][ident] = orjson.loads(raw)["items"]
        now = int(time.time() * 1000)
        out: dict[str, bytes] = {}
        for uid, state in users.items():
            recent, cats = plans[uid]
            recs = blend(
                recent,
                {BOUGHT: lists[BOUGHT], VIEWED: lists[VIEWED]},
                lists["cat"].get("", []),
                {c: lists["cat"][c] for c in cats if c in lists["cat"]},
                exclude=set(state.purchased) | {r.item_id for r in state.recent},
                available=self._available,
                k=self.settings.list_size,
                weights=self.weights,
            )
            out[uid] = encode_user(
                recs, recent, self.settings.version, self.settings.variant, now, state.last_ts
            )
        return out

    async def publish(self, users: Mapping[str, UserState]) -> None:
        """Build and write the lists of ``users``; each is re-checked after ``settle_s``."""
        records = await self.build(users)
        await self._write(records)
        if self.settings.settle_s > 0:
            deadline = time.monotonic() + self.settings.settle_s
            for uid, rec in records.items():
                self.settling.pop(uid, None)
                self.settling[uid] = (deadline, _items(rec))

    async def settle(self, lookup: Callable[[str], UserState | None]) -> int:
        """Rebuild users whose settle time passed; write only lists that changed."""
        now = time.monotonic()
        due: list[tuple[str, bytes]] = []
        while self.settling:
            uid, (deadline, items) = next(iter(self.settling.items()))
            if deadline > now:
                break
            self.settling.popitem(last=False)
            due.append((uid, items))
        states = {uid: s for uid, _ in due if (s := lookup(uid)) is not None}
        if not states:
            return 0
        records = await self.build(states)
        changed = {u: r for u, r in records.items() if _items(r) != dict(due)[u]}
        await self._write(changed)
        return len(changed)

    async def _write(self, records: Mapping[str, bytes]) -> None:
        ttl = self.settings.user_ttl_s
        writes: Iterable[Write] = ((self.publisher.keys.user(u), r, ttl) for u, r in records.items())
        await self.publisher.write(list(writes))


def _items(record: bytes) -> bytes:
    return orjson.dumps(orjson.loads(record)["items"])
