"""How long a restarted worker takes to serve again: launch -> a new user's first list.

``python -m agents.restart_bench --catalog 100000 --events 2000`` (``make bench-restart``)
uses the embedded stack of ``--state-dir``, started for the run and stopped after it
unless it was already up (as ``kapparec bench`` does). It produces a synthetic shop
(``--catalog`` catalogue records, ``--events`` interactions) to topics and a namespace of
its own, lets one worker ingest all of it and stops that worker. Then, ``--runs`` times:
a worker is launched, an event of a user never seen before is produced at once, and the
time until that user's list is in Redis is taken; the worker is stopped again. What a
restart pays is in that time: the process start, Faust's start and table recovery, the
group join, the catalogue copy's catch-up, and the first batch.

``--stop kill`` ends every worker with SIGKILL instead of SIGTERM, as a crash does: the
dead member then holds its partitions until its session times out
(``KAPPAREC_SESSION_TIMEOUT_S``).

Prints one JSON document; ``--out DIR`` also writes it to ``DIR/restart-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from agents.admin import ensure_topics
from agents.bench import discard_after, run_settings
from agents.lag import wait_caught_up
from agents.producer import produce
from infra import stack
from infra.workers import WorkerProcess
from schemas.events import CatalogItem, Interaction
from streams.serving import Keys
from streams.settings import Settings, load_settings
from streams.sources import synthetic
from streams.topics import build_topics

POLL_S = 0.02


def run(
    state_dir: Path,
    catalog: int,
    events: int,
    runs: int,
    stop: str,
    seed: int = 0,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Ingest a shop with one worker, then time ``runs`` restarts; see the module doc."""
    base = load_settings(state_dir=str(state_dir))
    before = stack.read_state(base.state_dir)
    state = stack.up(base)
    s = run_settings(base, state, "restart")
    try:
        return measure(s, catalog, events, runs, stop, seed, timeout)
    finally:
        if before is None or before.get("pids") != state.get("pids"):
            stack.down(base)
        else:
            discard_after(s)


def measure(
    s: Settings,
    catalog: int,
    events: int,
    runs: int,
    stop: str,
    seed: int,
    timeout: float,
) -> dict[str, Any]:
    """The measurement under ``s``: a run of its own (:func:`agents.bench.run_settings`)."""
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    records = list(synthetic(max(100, events // 20), catalog, events, seed=seed))
    items = [r.item_id for r in records if isinstance(r, CatalogItem)]
    last_ts = max(r.ts for r in records)
    t0 = time.perf_counter()
    summary = produce(s, records, progress=False)
    if not summary.ok:
        raise SystemExit(f"producing the shop failed: {summary}")
    result: dict[str, Any] = {
        "namespace": s.namespace,
        "partitions": s.partitions,
        "catalog_records": catalog,
        "interactions": events,
        "stop": stop,
        "produce_s": round(time.perf_counter() - t0, 1),
    }
    logs = Path(s.state_dir) / "restart-bench"
    t0 = time.perf_counter()
    worker = WorkerProcess(s, logs / f"{s.namespace}.log", worker_id="restart")
    try:
        wait_caught_up(s, timeout, on_poll=lambda _: _check(worker))
        result["first_ingest_s"] = round(time.perf_counter() - t0, 1)
    finally:
        _stop(worker, stop)
    r = redis.Redis.from_url(s.redis_url)
    try:
        result["runs"] = [
            _restart(s, r, logs, stop, i, items[i % len(items)], last_ts + i * 1000, timeout)
            for i in range(1, runs + 1)
        ]
    finally:
        r.close()
    return result


def _restart(
    s: Settings,
    r: redis.Redis,
    logs: Path,
    stop: str,
    i: int,
    item: str,
    ts: int,
    timeout: float,
) -> dict[str, float]:
    user = f"restart-probe-{i}"
    key = Keys(s.namespace, s.version).user(user)
    event = Interaction(event_id=f"restart-{i}", type="view", user_id=user, item_id=item, ts=ts)
    launched = time.perf_counter()
    worker = WorkerProcess(s, logs / f"{s.namespace}.log", worker_id="restart")
    try:
        if not produce(s, [event], progress=False).ok:
            raise SystemExit("producing the probe event failed")
        produced = time.perf_counter()
        deadline = launched + timeout
        while not r.exists(key):
            _check(worker)
            if time.perf_counter() > deadline:
                raise SystemExit(f"no list for {user} within {timeout:.0f} s; see {worker.log}")
            time.sleep(POLL_S)
        seen = time.perf_counter()
    finally:
        _stop(worker, stop)
    return {
        "launch_to_first_list_s": round(seen - launched, 2),
        "produce_to_first_list_s": round(seen - produced, 2),
    }


def _check(worker: WorkerProcess) -> None:
    if not worker.alive:
        raise SystemExit(f"the worker exited; its log: {worker.log}\n{worker.tail()}")


def _stop(worker: WorkerProcess, how: str) -> None:
    if how == "kill":
        worker.kill()
    else:
        worker.stop(grace_s=15.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run, print the JSON result."""
    p = argparse.ArgumentParser(prog="python -m agents.restart_bench", description=__doc__)
    p.add_argument("--catalog", type=int, default=100_000, help="catalogue records")
    p.add_argument("--events", type=int, default=2_000, help="interactions before the restarts")
    p.add_argument("--runs", type=int, default=2, help="restarts timed")
    p.add_argument("--stop", choices=("term", "kill"), default="term", help="how workers end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("KAPPAREC_STATE_DIR", ".kapparec"))
    )
    p.add_argument("--out", type=Path, help="also write the result to DIR/restart-<time>.json")
    args = p.parse_args(argv)
    if min(args.catalog, args.runs) < 1 or args.events < 0:
        p.error("--catalog and --runs must be at least 1, --events at least 0")
    res = run(args.state_dir, args.catalog, args.events, args.runs, args.stop, args.seed)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"restart-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
            json.dumps(res, indent=2) + "\n"
        )
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
