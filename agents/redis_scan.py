"""One command per key matching a pattern, over SCAN (Redis keeps serving meanwhile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

BATCH = 1_000


def each_key(r: redis.Redis, pattern: str, command: Callable[[Any, bytes], object]) -> int:
    """Queue ``command(pipeline, key)`` for every key matching ``pattern``, sent
    ``BATCH`` at a time; returns the number of keys."""
    n = 0
    pipe = r.pipeline(transaction=False)
    for key in r.scan_iter(match=pattern, count=BATCH):
        command(pipe, key)
        n += 1
        if n % BATCH == 0:
            pipe.execute()
    pipe.execute()
    return n


def delete_matching(r: redis.Redis, pattern: str) -> int:
    """UNLINK every key matching ``pattern``; returns how many there were."""
    return each_key(r, pattern, lambda pipe, key: pipe.unlink(key))
