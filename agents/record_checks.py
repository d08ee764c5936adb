"""Checks of a decoded record against where and when it arrived, beyond its schema.

The schema (``schemas/``) judges a record's bytes and its key (``schemas.codec.check_key``).
These judge it against its partition and the worker's clock; each failure raises the
:class:`DecodeError` that sends the record to its dead-letter topic.
"""

from __future__ import annotations

import time

from schemas.errors import DecodeError
from streams.partitioning import partition_for


def check_partition(partition: int, key: str, partitions: int, field: str = "user_id") -> None:
    """A record must be on the partition Kafka's default partitioner (murmur2) gives its
    key. A user's state is owned by that partition and skips offsets it has applied, so
    an event on another partition would be lost or would hide the user's next ones; an
    item's catalogue records are ordered only within its partition, so one on another
    partition could overwrite a newer record with an older one."""
    owner = partition_for(key, partitions)
    if partition != owner:
        raise DecodeError(
            "wrong_partition",
            f"{field} {key!r} belongs on partition {owner}, not {partition}: "
            "producers must partition by key with murmur2 (Kafka's default)",
            field,
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
