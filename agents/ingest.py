"""Ingest of interactions: decode, dead-letter the bad, update user state, ship item deltas.

One batch of raw messages becomes: dead-letter envelopes (awaited), one table write per
touched user, one item-delta message per item partition (awaited; split when large) and
one pipelined Redis write of the touched users' lists. Only then are the messages
acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from agents.control import HEADER, REFRESH, refresh_request
from agents.dead_letters import DeadLetters
from agents.faust_batches import records_of
from agents.metrics import WORKER
from agents.record_checks import check_not_ahead, check_partition
from agents.tables import put_all, reader
from agents.user_lists import UserLists
from schemas.codec import check_key, decode_interaction
from schemas.errors import DecodeError
from streams.item_side import Group, encode_messages, route
from streams.settings import Settings
from streams.user_state import UserState

AGENT = "ingest_interactions"
# Half the producer's default request limit (1,000,000 B): an item-delta message of a
# large batch is split below it (messages of one partition keep their order).
MAX_DELTA_MESSAGE_BYTES = 500_000


@dataclass
class IngestInteractions:
    """Handles one batch of raw interaction messages."""

    settings: Settings
    users: Any  # faust Table[str, UserState]
    item_deltas: faust.TopicT
    dead_letters: DeadLetters
    user_lists: UserLists
    trending_partials: faust.TopicT | None = None
    # Waits until this worker's catalogue copy holds every record written so far.
    catalog_synced: Callable[[], Awaitable[bool]] | None = None
    # The partitions of ``interactions`` this worker owns now; without it, a refresh is
    # counted as covering only the partition its request arrived on.
    owned: Callable[[], set[int]] | None = None
    # Per request id, the partitions whose users a refresh on this worker has covered.
    refreshed: dict[bytes, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._user = reader(self.users)

    async def handle(self, events: Sequence[Any]) -> None:
        """Process a batch; returns once all its effects are durable."""
        rejected: list[tuple[Any, DecodeError]] = []
        touched: dict[str, tuple[int, UserState]] = {}
        groups: dict[int, list[Group]] = defaultdict(list)
        n = self.settings.partitions
        requests: list[tuple[bytes, int]] = []
        for msg in records_of(events):
            request = refresh_request(msg)
            if request is not None:
                if self._new_request(request, msg.partition):
                    requests.append((request, msg.partition))
                continue
            try:
                ev = decode_interaction(msg.value, self.settings.max_event_bytes)
                check_key(msg.key, ev.user_id, "user_id")
                check_partition(msg.partition, ev.user_id, n)
                check_not_ahead(ev.ts, self.settings.max_future_s)
            except DecodeError as exc:
                rejected.append((msg, exc))
                continue
            WORKER.event(ev.type)
            entry = touched.get(ev.user_id)
            state = entry[1] if entry else self._user(ev.user_id) or UserState()
            touched[ev.user_id] = (msg.partition, state)
            deltas = state.apply(ev, msg.offset, self.settings.recent_size)
            for p, group in route(deltas, msg.partition, msg.offset, n).items():
                groups[p].append(group)
        await self.dead_letters.send_all(rejected, AGENT)
        # The users' lists are built while the broker acknowledges the deltas and the
        # state: a list needs neither, and a batch redone after a crash rebuilds it.
        await asyncio.gather(
            self._ship(groups, touched),
            self.user_lists.publish({u: s for u, (_, s) in touched.items()}),
        )
        if requests:
            if self.catalog_synced is not None:
                await self.catalog_synced()
            owned = self.owned() if self.owned is not None else set()
            await self.user_lists.refresh_all(self.users)
            for request, partition in requests:
                self.refreshed.setdefault(request, set()).update(owned, (partition,))
            # This batch's users again, now published as a live worker's are, so that
            # they are checked once more when the item side has folded this batch in.
            await self.user_lists.publish({u: s for u, (_, s) in touched.items()})
            if self.trending_partials is not None:
                # Drained before the request: every trending partial is merged already.
                await (
                    await self.trending_partials.send(
                        key=b"refresh", value=b"", partition=0, headers=[(HEADER, REFRESH)]
                    )
                )

    async def _ship(
        self, groups: dict[int, list[Group]], touched: dict[str, tuple[int, UserState]]
    ) -> None:
        """Send the item deltas, then the user states, and wait until both are durable.

        Deltas before user state: if the worker dies in between, the user's events are
        applied again after restart and the item side drops the repeated deltas.
        """
        sends = [
            await self.item_deltas.send(key=str(p).encode(), value=raw, partition=p)
            for p, g in groups.items()
            for raw in encode_messages(g, MAX_DELTA_MESSAGE_BYTES)
        ]
        await asyncio.gather(*sends)
        await put_all((self.users, p, uid, state) for uid, (p, state) in touched.items())

    def _new_request(self, request: bytes, partition: int) -> bool:
        """Whether the request's arrival on ``partition`` leaves users here to refresh.

        A request reaches every partition; a worker owning several refreshes them all at
        once. Remembered per partition, not per process: a partition taken over later
        (its owner died before refreshing) brings the request again, and its users,
        recovered here since, were not in that refresh.
        """
        return partition not in self.refreshed.get(request, ())
