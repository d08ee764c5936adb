"""Build and publish users' lists: one Redis read and one pipelined write per batch of users.

Item-side lists are owned by other partitions, so they are read from the serving copy
in Redis (never from a local Table, which would hold only this worker's partitions).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from agents.loop_priority import LoopPriority
from agents.metrics import WORKER
from agents.publisher import Publisher, Write
from streams.blending import DEFAULT_WEIGHTS, BlendWeights
from streams.experiments import Arm, Experiment
from streams.recommend import Catalog, Lists, plan, recommend
from streams.serving import encode_user, same_items
from streams.settings import Settings
from streams.user_state import BOUGHT, VIEWED, UserState

PARSED_KEPT = 16_384
# Users rebuilt by one step of a re-check: between steps it steps aside (see settle).
SETTLE_CHUNK = 64


class UserLists:
    """Computes user lists from user state plus the serving copy of item-side lists."""

    def __init__(
        self,
        publisher: Publisher,
        settings: Settings,
        catalog: Catalog,
        weights: BlendWeights = DEFAULT_WEIGHTS,
        experiment: Experiment | None = None,
        on_write: Callable[[Mapping[str, bytes]], Awaitable[None]] | None = None,
        priority: LoopPriority | None = None,
    ) -> None:
        self.publisher = publisher
        self.settings = settings
        self.catalog = catalog
        self.weights = weights
        # A/B hook: the user's arm picks the variant stamped and the weights used.
        self.experiment = experiment
        # recs-out hook: every record written to Redis is also handed to this sender.
        self.on_write = on_write
        # A re-check is background work: between its steps it steps aside for the
        # ingest's batches (agents/loop_priority.py), so users' new events go first.
        self.priority = priority or LoopPriority()
        self.rules = settings.business_rules
        # user -> (wall-clock deadline, record last written): re-check once after
        # settle_s, when the item side has folded in this user's own events.
        self.settling: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # With ``lists_on_refresh``, nothing is published until the first refresh; then
        # lists are published as events come, like a live worker's (see refresh_all).
        self.quiet = settings.lists_on_refresh
        # Lists read from Redis, parsed, by their exact bytes (see build).
        self._parsed: dict[bytes, list[Any]] = {}

    async def build(self, users: Mapping[str, UserState]) -> dict[str, bytes]:
        """Encoded records of ``users``, from one MGET of the lists they need."""
        keys = self.publisher.keys
        plans = {uid: plan(state, self.catalog) for uid, state in users.items()}
        wanted: dict[str, tuple[str, str]] = {
            keys.trending(): ("trending", ""),
            keys.popular(): ("popular", ""),
        }
        for p in plans.values():
            for a in p.anchors:
                wanted[keys.bought(a)] = (BOUGHT, a)
                wanted[keys.viewed(a)] = (VIEWED, a)
            for c in p.categories:
                wanted[keys.trending(c)] = ("category", c)
        names = list(wanted)
        lists = Lists()
        # A list read before, byte for byte, is not parsed again: an item's lists change
        # at most once per item-side window, users' lists are built several times as
        # often, and parsing was an eighth of building them. Keyed by the bytes, a
        # changed list is never served stale; the cache is emptied when it grows past
        # PARSED_KEPT lists (9 KB each with 50 entries, the bytes included: about 150 MB,
        # and one batch more).
        cache = self._parsed
        if len(cache) > PARSED_KEPT:
            cache.clear()
        for name, raw in zip(names, await self.publisher.mget(names), strict=True):
            if raw is None:
                continue
            kind, ident = wanted[name]
            items = cache.get(raw)
            if items is None:
                items = cache[raw] = orjson.loads(raw)["items"]
            if kind == "trending":
                lists.trending = items
            elif kind == "popular":
                lists.popular = items
            else:
                getattr(lists, kind)[ident] = items
        now = int(time.time() * 1000)
        s = self.settings
        arms = {uid: self._arm(uid) for uid in users}
        packed = self._category if s.user_list_encoding == "packed" else None
        return {
            uid: encode_user(
                recommend(
                    state,
                    plans[uid],
                    lists,
                    self.catalog,
                    s.list_size,
                    arms[uid].weights,
                    self.rules,
                    s.category_cap,
                ),
                plans[uid].anchors,
                s.version,
                arms[uid].variant,
                now,
                state.last_ts,
                packed,
            )
            for uid, state in users.items()
        }

    def _category(self, item_id: str) -> str | None:
        meta = self.catalog(item_id)
        return meta.get("category") if meta else None

    def _arm(self, user_id: str) -> Arm:
        if self.experiment is None:
            return Arm(self.settings.variant, self.weights)
        return self.experiment.arm(user_id)

    async def publish(self, users: Mapping[str, UserState]) -> None:
        """Build and write the lists of ``users``; each is re-checked after ``settle_s``.

        With ``lists_on_refresh`` nothing is written until :meth:`refresh_all` has built
        every list once the log was drained.
        """
        if not users or self.quiet:
            return
        records = await self.build(users)
        if self.settings.settle_s > 0:
            # Before the write: a re-check being built now (see settle) sees these users
            # as published again and leaves their lists alone.
            deadline = time.monotonic() + self.settings.settle_s
            for uid, rec in records.items():
                self.settling.pop(uid, None)
                self.settling[uid] = (deadline, rec)
        await self._write(records)
        WORKER.freshness(s.last_ts for s in users.values())

    async def settle(self, lookup: Callable[[str], UserState | None]) -> int:
        """Rebuild users whose settle time passed; write only lists that changed.

        ``SETTLE_CHUNK`` users at a time, each step its own read and write, stepping
        aside between steps: under load thousands of users come due at once, and
        rebuilding them in one go held the event loop for most of a second.
        """
        now = time.monotonic()
        due: list[tuple[str, bytes]] = []
        while self.settling:
            uid, (deadline, items) = next(iter(self.settling.items()))
            if deadline > now:
                break
            self.settling.popitem(last=False)
            due.append((uid, items))
        written = 0
        for start in range(0, len(due), SETTLE_CHUNK):
            if start:
                await self.priority.step_aside()
            written += await self._settle(due[start : start + SETTLE_CHUNK], lookup)
        return written

    async def _settle(
        self, due: list[tuple[str, bytes]], lookup: Callable[[str], UserState | None]
    ) -> int:
        # Looked up now, not when they came due: a step runs after the pauses before it.
        states = {uid: s for uid, _ in due if (s := lookup(uid)) is not None}
        if not states:
            return 0
        records = await self.build(states)
        written = dict(due)
        # A user published again while this was built (it awaits its read) has a newer
        # list, and a re-check of its own: this one must not overwrite it.
        changed = {
            u: r
            for u, r in records.items()
            if u not in self.settling and not same_items(written[u], r)
        }
        await self._write(changed)
        return len(changed)

    async def refresh_all(self, users: Any, chunk: int = 500) -> int:
        """Recompute the list of every user this worker holds, ``chunk`` at a time.

        From then on lists are published as events come, even with ``lists_on_refresh``:
        a replay runs beside the live version, and the events that reach the log between
        its refresh and its workers' stop must not be left without lists.
        """
        self.quiet = False
        uids = list(users.data.keys())
        for start in range(0, len(uids), chunk):
            part = uids[start : start + chunk]
            states = {u: s for u in part if (s := users.get(u)) is not None}
            await self._write(await self.build(states))
        return len(uids)

    async def _write(self, records: Mapping[str, bytes]) -> None:
        ttl = self.settings.user_ttl_s
        writes: Iterable[Write] = (
            (self.publisher.keys.user(u), r, ttl) for u, r in records.items()
        )
        await self.publisher.write(list(writes))
        if self.on_write is not None:
            await self.on_write(records)
