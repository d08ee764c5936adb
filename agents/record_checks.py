"""Checks of a decoded record against where and when it arrived, beyond its schema.

The schema (``schemas/``) judges a record's bytes and its key (``schemas.codec.check_key``).
These judge it against its partition and the worker's clock; each failure raises the
:class:`DecodeError` that sends the record to its dead-letter topic.
"""

from __future__ import annotations

import time

from schemas.errors import DecodeError
from streams.partitioning import partition_for


def check_partition(partition: int, user_id: str, partitions: int) -> None:
    """A user's events must all be on the partition Kafka's default partitioner (murmur2)
    gives its id: the user's state is owned by that partition, and it skips offsets it
    has applied, so an event on another partition would be lost or would hide the
    user's next ones."""
    owner = partition_for(user_id, partitions)
    if partition != owner:
        raise DecodeError(
            "wrong_partition",
            f"user_id {user_id!r} belongs on partition {owner}, not {partition}: "
            "producers must partition by key with murmur2 (Kafka's default)",
            "user_id",
        )


def check_not_ahead(ts: int, max_future_s: int, now_ms: int | None = None) -> None:
    """An event time at most ``max_future_s`` ahead of this worker's clock (0: no limit).

    Scores and catalogue records keep the newest event time they saw: one record dated
    centuries ahead would decay every trending score to zero for good, and would keep
    its item's catalogue record from ever being updated. A log accepted live is also
    accepted by any later replay of it, whose clock is later.
    """
    if max_future_s <= 0:
        return
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts > now + max_future_s * 1000:
        raise DecodeError(
            "bad_value",
            f"ts {ts} is more than {max_future_s} s ahead of this worker's clock ({now})",
            "ts",
        )
