"""``kapparec agree``: the bucketed evaluation through the real broker, a worker and Redis,
compared case by case with the same protocol run on the in-process pipeline.

Each bucket's events are produced, the workers drained and every list refreshed
(:func:`agents.control.refresh_when_drained`); the next bucket's cases are then ranked
against the user lists read from Redis. See ``docs/EVALUATION.md`` (End-to-end agreement).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import redis

from agents.admin import ensure_topics
from agents.bench import discard_after
from agents.bench import run_settings as bench_run_settings
from agents.control import refresh_when_drained
from agents.producer import ProduceError, produce
from infra import stack
from infra.workers import WorkerProcess
from streams.evaluation.agreement import (
    Answer,
    Comparison,
    PipelineLists,
    Plan,
    Ranked,
    compare,
    metrics,
    plan_buckets,
    run_buckets,
)
from streams.evaluation.datasets import MINUTE_MS, load, spec_for
from streams.evaluation.protocol import DAY_MS, Event
from streams.serving import Keys, decode_user
from streams.settings import Settings
from streams.topics import build_topics

# A bucket is one refresh of every list: a day of MovieLens, 15 minutes of the REES46 slice.
BUCKET_MS = {"movielens": DAY_MS, "rees46": 15 * MINUTE_MS}
DRAIN_TIMEOUT_S = 600.0
START_TIMEOUT_S = 120.0


class StackLists:
    """The real system as a list source: produce, drain, refresh; read user lists from Redis."""

    def __init__(self, settings: Settings, worker: WorkerProcess) -> None:
        self.settings = settings
        self.worker = worker
        self.keys = Keys(settings.namespace, settings.version)
        self.redis = redis.Redis.from_url(settings.redis_url)

    def advance(self, events: Sequence[Event]) -> None:
        """Produce ``events``, wait for the workers, then have every list recomputed."""
        summary = produce(self.settings, events, progress=False)
        if not summary.ok:
            raise ProduceError(f"bucket not fully delivered:\n{summary}", summary)
        refresh_when_drained(self.settings, DRAIN_TIMEOUT_S, on_poll=self._check_alive)

    def lists(self, user_ids: Collection[str]) -> dict[str, Ranked]:
        """Each user's published list; a user without a key gets an empty list."""
        found = user_items(self.redis, self.keys, user_ids)
        return {u: [(row[0], float(row[1])) for row in found.get(u, [])] for u in user_ids}

    def close(self) -> None:
        """Release the Redis connection."""
        self.redis.close()

    def _check_alive(self, _lag: object) -> None:
        if not self.worker.alive:
            raise RuntimeError(f"worker died:\n{self.worker.tail()}")


def user_items(
    client: redis.Redis, keys: Keys, user_ids: Collection[str], page: int = 1_000
) -> dict[str, list[Any]]:
    """The ``items`` of each user's published list, one MGET per ``page`` users; users
    without a list are left out."""
    uids = list(user_ids)
    out: dict[str, list[Any]] = {}
    for start in range(0, len(uids), page):
        part = uids[start : start + page]
        for uid, raw in zip(part, client.mget([keys.user(u) for u in part]), strict=True):
            if raw is not None:
                out[uid] = decode_user(raw)["items"]
    return out


def run_settings(base: Settings, state: dict[str, Any]) -> Settings:
    """Settings of one run: the stack's addresses, a namespace and topics of its own.

    The short flush and batching intervals only make draining faster: after a refresh
    every list is a function of the log alone, whatever the timers.
    """
    return bench_run_settings(base, state, "agree", flush_interval_s=0.2, batch_within_s=0.02)


def start_worker(settings: Settings, log: Path) -> WorkerProcess:
    """Create the run's topics, start one worker and wait until it has joined."""
    ensure_topics(settings.kafka_bootstrap, build_topics(settings).all())
    worker = WorkerProcess(settings, log)
    r = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not r.exists(Keys(settings.namespace, settings.version).meta()):
            if not worker.alive or time.monotonic() > deadline:
                worker.stop()
                raise RuntimeError(f"worker did not start:\n{worker.tail()}")
            time.sleep(0.1)
    finally:
        r.close()
    return worker


def through_stack(settings: Settings, plan: Plan, log: Path) -> list[Answer]:
    """The bucketed protocol against one real worker; the worker is stopped at the end."""
    worker = start_worker(settings, log)
    source = StackLists(settings, worker)
    total = len(plan.buckets)

    def progress(n: int, _bucket: object) -> None:
        click.echo(f"  bucket {n + 1}/{total} drained and refreshed", err=True)

    try:
        return run_buckets(plan, source, on_bucket=progress)
    finally:
        source.close()
        worker.stop()


def report(plan: Plan, local: list[Answer], e2e: list[Answer], extra: dict[str, Any]) -> Any:
    """The JSON report: counts, both sides' metrics, and every disagreement."""
    cmp: Comparison = compare(local, e2e)
    return {
        **extra,
        "buckets": len(plan.buckets),
        "interactions": plan.n_interactions,
        "positives": plan.n_positives,
        "skipped": {
            "cold_user": plan.n_cold_user,
            "repeat_item": plan.n_repeat_item,
            "first_bucket": plan.untested,
        },
        "n_cases": cmp.n_cases,
        "metrics": {
            "in_process": metrics([a.rank for a in local]),
            "end_to_end": metrics([a.rank for a in e2e]),
        },
        "rank_disagreements": len(cmp.rank_disagreements),
        "top20_list_disagreements": cmp.list_disagreements,
        "published_order_disagreements": cmp.raw_order_disagreements,
        "max_score_diff": cmp.max_score_diff,
        "disagreements": [
            {
                **asdict(d.case),
                "exclude": len(d.case.exclude),
                "rank_in_process": d.rank_a,
                "rank_end_to_end": d.rank_b,
                "first_diff": d.first_diff,
                "top_in_process": d.top_a,
                "top_end_to_end": d.top_b,
            }
            for d in cmp.rank_disagreements
        ],
    }


def run_agreement(
    base: Settings,
    dataset: str,
    data_dir: Path,
    limit: int,
    out: Path,
    bucket_ms: int | None = None,
) -> dict[str, Any]:
    """Run both sides on the first ``limit`` interactions; write ``agree-<dataset>.json``."""
    started = time.monotonic()
    spec = spec_for(dataset)
    width = bucket_ms or BUCKET_MS[dataset]
    plan = plan_buckets(load(spec, data_dir, limit).events, width, spec.case_types)
    before = stack.read_state(base.state_dir)
    stack.up(base)
    state = stack.read_state(base.state_dir) or {}
    started_stack = before is None or before.get("pids") != state.get("pids")
    s = None
    try:
        s = run_settings(base, state)
        click.echo(f"in-process: {len(plan.buckets)} buckets, {len(plan.cases)} cases", err=True)
        t0 = time.monotonic()
        local = run_buckets(plan, PipelineLists(s))
        local_s = time.monotonic() - t0
        click.echo("end-to-end through broker, worker and Redis ...", err=True)
        t0 = time.monotonic()
        e2e = through_stack(s, plan, Path(s.state_dir) / f"{s.namespace}-agree.log")
        e2e_s = time.monotonic() - t0
    finally:
        if started_stack:
            stack.down(base)
        elif s is not None:
            discard_after(s)
    extra = {
        "dataset": dataset,
        "limit": limit,
        "bucket_ms": width,
        "partitions": s.partitions,
        "list_size": s.list_size,
        "broker": stack.broker_label(state),
        "seconds": {
            "in_process": round(local_s, 1),
            "end_to_end": round(e2e_s, 1),
            "total": round(time.monotonic() - started, 1),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result = report(plan, local, e2e, extra)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"agree-{dataset}.json").write_text(json.dumps(result, indent=2) + "\n")
    return dict(result)


def table(result: dict[str, Any]) -> str:
    """Markdown table of both sides' metrics, and the agreement counts."""
    names = list(result["metrics"]["in_process"])
    lines = ["| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for run, label in (("in_process", "in-process"), ("end_to_end", "end-to-end")):
        vals = result["metrics"][run]
        lines.append(f"| {label} | " + " | ".join(f"{vals[n]:.4f}" for n in names) + " |")
    lines.append(
        f"\n{result['n_cases']} cases in {result['buckets']} buckets; "
        f"rank disagreements {result['rank_disagreements']}, "
        f"top-20 list disagreements {result['top20_list_disagreements']}, "
        f"published order disagreements {result['published_order_disagreements']}, "
        f"max score difference {result['max_score_diff']:.4g}"
    )
    return "\n".join(lines)
