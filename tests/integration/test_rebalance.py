"""A second worker joins mid-stream, works, then leaves: the lists equal a single worker's.

Each move of a partition hands its table state over through the changelog, and each
rebalance re-reads whatever was not committed; the per-user and per-item offset checks
must keep both from changing a single list.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from agents.lag import consumer_lag, input_topics, wait_caught_up
from agents.metrics import TABLE_KEYS, field, gauges_key
from agents.producer import produce
from infra.workers import WorkerProcess
from schemas.events import CatalogItem, Interaction
from streams.pipeline import LocalPipeline
from streams.settings import Settings
from streams.sources import synthetic
from streams.topics import TABLE_CATALOG, TABLE_USERS, build_topics
from tests.integration.test_pipeline import assert_lists_match, drain, settings, workers

__all__ = ["settings", "workers"]  # fixtures shared with test_pipeline


def _wait_owning(
    settings: Settings, worker: WorkerProcess, name: str, timeout: float = 120.0
) -> None:
    """Block until worker ``name`` reports users in its share of the users table."""
    key = gauges_key(settings.namespace, name)
    users = field(TABLE_KEYS, "", str(settings.version), name, TABLE_USERS)
    r = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout
    try:
        while float(r.hget(key, users) or 0) <= 0:
            assert worker.alive, worker.tail()
            assert time.monotonic() < deadline, f"{name} never owned users:\n{worker.tail()}"
            time.sleep(0.2)
    finally:
        r.close()


def _held(settings: Settings, names: tuple[str, ...], table: str) -> dict[str, int]:
    """Keys of ``table`` each worker holds, once their gauges were flushed after now."""
    time.sleep(2 * settings.metrics_flush_s + 0.5)  # gauges from after the last batch
    return table_keys(settings, names, table)


def table_keys(settings: Settings, names: tuple[str, ...], table: str) -> dict[str, int]:
    """Keys of ``table`` each worker held at its last gauge flush (0 once they expired)."""
    r = redis.Redis.from_url(settings.redis_url)
    try:
        return {
            n: int(
                float(
                    r.hget(
                        gauges_key(settings.namespace, n),
                        field(TABLE_KEYS, "", str(settings.version), n, table),
                    )
                    or 0
                )
            )
            for n in names
        }
    finally:
        r.close()


def _quarters(events: list[Any]) -> list[list[Any]]:
    """``events`` in four consecutive parts that together hold every one of them.

    ``synthetic`` yields its catalogue records before ``n_events`` interactions, so parts
    cut by ``n_events`` would leave the last records out of the log, not of the reference.
    """
    cuts = [len(events) * i // 4 for i in range(5)]
    return [events[a:b] for a, b in itertools.pairwise(cuts)]


def _new_items(events: list[Any], n: int) -> list[CatalogItem]:
    """``n`` catalogue records of items not seen before, timed at the first of ``events``."""
    ts = min(e.ts for e in events)
    return [
        CatalogItem(item_id=f"late-{i}", ts=ts, title=f"late {i}", category="late.arrivals")
        for i in range(n)
    ]


def test_worker_joins_then_leaves_gives_single_worker_lists(
    settings: Settings, workers: Callable[..., WorkerProcess]
) -> None:
    events = list(synthetic(n_users=150, n_items=80, n_events=6000, seed=11))
    parts = _quarters(events)
    assert produce(settings, parts[0], progress=False).ok
    first = workers("w1")
    _wait_owning(settings, first, "w1")
    second = workers("w2")
    assert produce(settings, parts[1], progress=False).ok  # w2 joins mid-stream
    _wait_owning(settings, second, "w2")  # the group now spans two workers

    def both_alive(_: Any) -> None:
        for w in (first, second):
            assert w.alive, f"worker died:\n{w.tail()}"

    # Produced once w2 owns its partitions, so w2 processes its share of these and hands
    # its own state back when it leaves. New catalogue records land on both workers'
    # partitions: each worker's catalogue agent writes its own share of them.
    parts[2] = _new_items(parts[2], 40) + parts[2]
    assert produce(settings, parts[2], progress=False).ok
    wait_caught_up(settings, 240, on_poll=both_alive)
    # Each user is held by exactly one worker: w1 dropped the users of the partitions it
    # handed over (else a refresh on w1 would republish them from a stale state).
    seen = {e.user_id for part in parts[:3] for e in part if isinstance(e, Interaction)}
    assert sum(_held(settings, ("w1", "w2"), TABLE_USERS).values()) == len(seen)
    # And each holds the whole catalogue, whichever worker's catalogue agent wrote it.
    items = {e.item_id for part in parts[:3] for e in part if isinstance(e, CatalogItem)}
    assert _held(settings, ("w1", "w2"), TABLE_CATALOG) == {"w1": len(items), "w2": len(items)}
    assert produce(settings, parts[3], progress=False).ok
    assert second.stop(grace_s=15.0) is not None  # leaves mid-stream: back to w1
    drain(settings, first, timeout=240)
    ref = LocalPipeline(settings)
    ref.apply_all(e for part in parts for e in part)  # exactly what was produced
    assert_lists_match(settings, ref)


def test_a_worker_joining_during_a_long_catch_up_changes_no_list(
    settings: Settings, tmp_path: Path
) -> None:
    # A backlog that w1, in batches of 100 events, is still working through, a batch in
    # hand most of the time, when w2 joins: the revocation meets work in flight.
    slow = dataclasses.replace(settings, batch_size=100)
    events = list(synthetic(n_users=300, n_items=150, n_events=40_000, seed=12))
    assert produce(slow, events, progress=False).ok
    first = WorkerProcess(slow, tmp_path / "w1.log", worker_id="w1")
    second = None
    try:
        _wait_owning(slow, first, "w1")
        second = WorkerProcess(slow, tmp_path / "w2.log", worker_id="w2")
        _wait_owning(slow, second, "w2")
        behind = consumer_lag(slow.kafka_bootstrap, slow.app_id, input_topics(slow))
        assert behind[build_topics(slow).interactions.name] > 0, "w1 had caught up already"
        drain(slow, first, timeout=300)
        assert second.alive, second.tail()
    finally:
        for w in (first, second):
            if w is not None:
                w.stop(grace_s=10.0)
    ref = LocalPipeline(slow)
    ref.apply_all(events)
    assert_lists_match(slow, ref)
