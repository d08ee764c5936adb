"""Where a time starts in a partition: the first offset whose timestamp is at or after it."""

from __future__ import annotations

from collections.abc import Callable


def first_offset_at(ts_of: Callable[[int], int], low: int, high: int, target_ms: int) -> int:
    """Smallest offset in ``[low, high)`` whose timestamp is >= ``target_ms``, else ``high``.

    ``ts_of(offset)`` reads one record's timestamp. Producers stamp records with the
    event's own time and a partition holds one user's events in order, so timestamps are
    taken to be non-decreasing along the partition (Kafka's time index assumes the same);
    a binary search then needs about log2(high - low) reads.

    >>> stamps = [10, 20, 20, 30]
    >>> first_offset_at(stamps.__getitem__, 0, 4, 20), first_offset_at(stamps.__getitem__, 0, 4, 99)
    (1, 4)
    """
    while low < high:
        mid = (low + high) // 2
        if ts_of(mid) < target_ms:
            low = mid + 1
        else:
            high = mid
    return low
