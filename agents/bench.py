"""``kapparec bench``: the pipeline's throughput against a Faust no-op agent on the same
broker in the same run, and freshness (event produced -> user's list in Redis)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import click
import orjson
import redis

from agents.admin import TopicError, delete_group, delete_topics, ensure_topics, topics_named
from agents.lag import caught_up_at
from agents.metrics import LOOP_LAG, counters_key
from agents.producer import produce
from agents.redis_scan import delete_matching
from agents.replica_recall import replica_recall
from infra import stack
from infra.workers import WorkerProcess
from schemas.events import Interaction
from streams.serving import Keys, decode_user
from streams.settings import Settings, load_settings
from streams.sources import synthetic
from streams.topics import TopicSpec, build_topics


def run_settings(base: Settings, state: dict[str, Any], label: str, **overrides: Any) -> Settings:
    """Settings of one run on the stack ``state``: a namespace and topics of its own."""
    ns = f"{label}{uuid.uuid4().hex[:6]}"
    return load_settings(
        fallback=state,
        kafka_bootstrap=state["kafka_bootstrap"],
        redis_url=state["redis_url"],
        namespace=ns,
        topic_prefix=f"{ns}.",
        state_dir=base.state_dir,
        **overrides,
    )


def discard(s: Settings) -> tuple[int, list[str]]:
    """Delete what a run under ``s`` (see :func:`run_settings`) leaves on a stack that
    outlives it: its Redis keys (every version of its namespace), its topics and its
    consumer group. Catalogue records have no TTL, so without this a shared Redis would
    keep them for good. Returns the number of keys and the topics deleted."""
    r = redis.Redis.from_url(s.redis_url)
    try:
        keys = delete_matching(r, f"{s.namespace}:*")
    finally:
        r.close()
    delete_group(s.kafka_bootstrap, s.app_id)
    return keys, delete_topics(s.kafka_bootstrap, topics_named(s.kafka_bootstrap, s.topic_prefix))


def discard_after(s: Settings) -> None:
    """:func:`discard`, for a ``finally``: a failure is reported, not raised, so that it
    neither hides the run's own error nor throws away its figures."""
    try:
        discard(s)
    except (redis.RedisError, TopicError) as exc:
        click.echo(f"could not delete run {s.namespace}'s keys and topics: {exc}", err=True)


def noop_rate(s: Settings, n: int) -> dict[str, Any]:
    """Rate of a Faust agent that does nothing, over ``n`` copies of real events."""
    topic = TopicSpec(f"{s.topic_prefix}noop", s.partitions, "user_id")
    ensure_topics(s.kafka_bootstrap, [topic])
    events = [
        e
        for e in synthetic(n_users=max(100, n // 20), n_items=2000, n_events=n, seed=1)
        if isinstance(e, Interaction)
    ]
    from confluent_kafka import KafkaError, Producer

    from agents.producer import producer_config, send
    from schemas.codec import encode

    failed: list[str] = []

    def delivered(err: KafkaError | None, _: object) -> None:
        if err is not None:
            failed.append(str(err))

    p = Producer(producer_config(s))
    for ev in events:
        send(
            p,
            topic.name,
            ev.user_id.encode(),
            encode(ev),
            None,
            delivered,
        )
    if p.flush(60) or failed:
        raise RuntimeError(f"no-op events not delivered: {failed[:3]}")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.noop",
            s.kafka_bootstrap,
            topic.name,
            str(len(events)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln[ln.index("{") :] for ln in out.stdout.splitlines() if "{" in ln]
    if not lines:
        raise RuntimeError(f"no-op agent failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def pipeline_rate(s: Settings, n: int, log: Path) -> tuple[dict[str, Any], WorkerProcess]:
    """Events/s of the whole pipeline over ``n`` pre-loaded events (worker left running)."""
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    events = list(synthetic(n_users=max(100, n // 20), n_items=2000, n_events=n, seed=2))
    produce(s, events, progress=False)
    r = redis.Redis.from_url(s.redis_url)
    keys = Keys(s.namespace, s.version)
    worker = WorkerProcess(s, log)
    deadline = time.monotonic() + 120
    while not r.exists(keys.meta()):  # worker joined and started
        if not worker.alive or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{worker.tail()}")
        time.sleep(0.05)
    while not r.keys(keys.prefix + "user:*"):
        time.sleep(0.02)
    started = time.monotonic()
    elapsed = caught_up_at(s, 1800, poll_s=0.25) - started
    return {"events": n, "seconds": elapsed, "rate": n / elapsed}, worker


class Background:
    """Synthetic interactions produced at ``rate`` per second on a thread, until stopped."""

    def __init__(self, s: Settings, rate: float) -> None:
        self.s, self.rate = s, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Background:
        if self.rate > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        from confluent_kafka import Producer

        from agents.producer import producer_config
        from schemas.codec import encode

        topic = build_topics(self.s).interactions.name
        p = Producer(producer_config(self.s))
        events = synthetic(n_users=5000, n_items=2000, n_events=10**7, seed=3)
        start = time.monotonic()
        for ev in events:
            if self._stop.is_set():
                break
            if not isinstance(ev, Interaction):
                continue
            ahead = start + self.sent / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            ev = Interaction(f"bg{self.sent}", ev.type, f"bg-{ev.user_id}", ev.item_id,
                             int(time.time() * 1000))  # fmt: skip
            p.produce(topic, encode(ev), key=ev.user_id.encode())
            p.poll(0)
            self.sent += 1
        p.flush(30)


def freshness(
    s: Settings, probes: int, gap_s: float = 0.05, background_rate: float = 0.0
) -> dict[str, Any]:
    """Seconds from producing a user's event to that event's list being readable in Redis,
    optionally while other events flow at ``background_rate`` per second."""
    from confluent_kafka import Producer

    from agents.producer import producer_config
    from schemas.codec import encode

    topic = build_topics(s).interactions.name
    p = Producer({**producer_config(s), "linger.ms": 0})
    r = redis.Redis.from_url(s.redis_url)
    keys = Keys(s.namespace, s.version)
    samples: list[float] = []
    lag_before = loop_lag_buckets(r, s)
    with Background(s, background_rate) as bg:
        started = time.monotonic()
        _probe(p, r, keys, topic, encode, probes, gap_s, samples)
        achieved = bg.sent / (time.monotonic() - started)
    time.sleep(s.metrics_flush_s + 0.5)  # the worker's last heartbeats reach Redis
    q = statistics.quantiles(samples, n=100, method="inclusive")  # never beyond max
    out: dict[str, Any] = {"probes": probes, "p50_s": q[49], "p99_s": q[98], "max_s": max(samples)}
    if background_rate:
        out["background_rate"] = round(achieved)
    out["loop_lag"] = lag_quantiles(lag_before, loop_lag_buckets(r, s))
    return out


def loop_lag_buckets(r: Any, s: Settings) -> dict[float, float]:
    """The workers' ``kapparec_loop_lag_seconds`` bucket counts: upper bound -> count."""
    raw = r.hgetall(counters_key(s.namespace))
    out: dict[float, float] = {}
    for key, value in raw.items():
        name, part, *labels = orjson.loads(key)
        if name == LOOP_LAG.name and part == "bucket" and labels[0] == str(s.version):
            out[float(labels[1])] = float(value)
    return out


def lag_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Heartbeats observed between two bucket snapshots, and the bucket holding their
    median and 99th percentile (upper bounds in seconds; ``inf`` past the last bucket)."""
    counts = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = sum(c for _, c in counts)
    out: dict[str, Any] = {"heartbeats": int(total)}
    for name, q in (("p50_le_s", 0.5), ("p99_le_s", 0.99)):
        seen = 0.0
        for le, c in counts:
            seen += c
            if total and seen >= q * total:
                out[name] = le
                break
    return out


def _probe(p: Any, r: Any, keys: Keys, topic: str, encode: Any, probes: int, gap_s: float,
           samples: list[float]) -> None:  # fmt: skip
    for i in range(probes):
        user = f"probe-{uuid.uuid4().hex[:8]}"
        ts = int(time.time() * 1000)
        ev = Interaction(f"{user}-e", "view", user, f"i{i % 50}", ts)
        sent = time.monotonic()
        p.produce(topic, encode(ev), key=user.encode())
        p.flush(10)
        while True:
            raw = r.get(keys.user(user))
            if raw is not None and decode_user(raw)["event_ts"] == ts:
                samples.append(time.monotonic() - sent)
                break
            if time.monotonic() - sent > 30:
                samples.append(float("inf"))
                break
            time.sleep(0.002)
        time.sleep(gap_s)


# A worker's CPU by what its loop was doing: a sample belongs to the first part that
# has a frame in one of its modules (users' lists run beside the ingest, in its batch).
PROFILE_PARTS = (
    ("users' lists", ("agents/user_lists.py",)),
    ("item side", ("agents/items.py",)),
    ("ingest", ("agents/ingest.py",)),
    ("catalogue", ("agents/catalog.py", "agents/catalog_follower.py")),
    ("item vectors", ("agents/vector_replica.py",)),
)
OUTSIDE = "outside the handlers (Faust, aiokafka, asyncio)"
_ROOT = str(Path(__file__).resolve().parent.parent) + os.sep


def _project_module(path: str) -> str | None:
    """``streams/item_state.py`` for a file of this project, else None."""
    if path.startswith(_ROOT):
        path = path[len(_ROOT) :]
    elif path.startswith(os.sep):
        return None
    return path if path.split(os.sep, 1)[0] in ("agents", "streams", "schemas") else None


def profile_shares(lines: list[str], seconds: float, rate_hz: int) -> dict[str, Any]:
    """Shares of a worker's samples, from py-spy's raw output (``frame;frame;... count``,
    a frame ``function (path:line)``, outermost first; idle samples are not recorded).

    ``busy`` is the share of the period the process was on the CPU; ``parts`` splits the
    samples by :data:`PROFILE_PARTS`; ``modules``, by the innermost frame of this
    project's code (``libraries`` when there is none), the 12 largest.
    """
    parts: dict[str, int] = {}
    modules: dict[str, int] = {}
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        paths = [f[f.rfind("(") + 1 : f.rfind(":")] for f in stack.split(";")]
        part = next(
            (name for name, mods in PROFILE_PARTS if any(p.endswith(mods) for p in paths)),
            OUTSIDE,
        )
        parts[part] = parts.get(part, 0) + n
        own = [m for m in map(_project_module, paths) if m]
        module = own[-1] if own else "libraries"
        modules[module] = modules.get(module, 0) + n

    def shares(counts: dict[str, int], top: int) -> dict[str, float]:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return {k: round(v / max(1, total), 3) for k, v in ranked}

    return {
        "seconds": round(seconds, 1),
        "samples": total,
        "busy": round(total / max(1.0, seconds * rate_hz), 3),
        "parts": shares(parts, len(PROFILE_PARTS) + 1),
        "modules": shares(modules, 12),
    }


class Profiler:
    """py-spy sampling a process from ``__enter__`` to ``__exit__`` (raw output)."""

    RATE_HZ = 100

    def __init__(self, pid: int, path: Path) -> None:
        self.pid, self.path = pid, path
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Profiler:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not os.path.exists(spy):
            raise click.ClickException("--profile needs py-spy (pip install -e '.[dev]')")
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            [spy, "record", "--format", "raw", "--nonblocking", "-r", str(self.RATE_HZ),
             "-d", "3600", "-p", str(self.pid), "-o", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self._started
        self._proc.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
        _, err = self._proc.communicate(timeout=60)
        if not self.path.exists():
            raise click.ClickException(f"py-spy wrote no profile: {err.decode()[-500:]}")
        lines = self.path.read_text().splitlines()
        self.result = {"file": str(self.path), **profile_shares(lines, seconds, self.RATE_HZ)}


def run_bench(
    base: Settings,
    n: int,
    probes: int,
    out: Path,
    rate: float | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Run the benchmark on the embedded stack; print and write ``reports/bench-*.json``.

    The loaded freshness test runs at ``rate`` events/s, by default half the measured
    pipeline rate; a fixed rate compares two versions of the code at the same load.
    ``profile`` samples the worker with py-spy during that test.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    before = stack.read_state(base.state_dir)
    stack.up(base)
    state = stack.read_state(base.state_dir) or {}
    started_stack = before is None or before.get("pids") != state.get("pids")
    s = run_settings(base, state, "bench")
    worker = None
    try:
        click.echo(f"no-op Faust agent over {n} events ...")
        noop = noop_rate(s, n)
        click.echo(f"pipeline over {n} events ...")
        pipe, worker = pipeline_rate(s, n, Path(s.state_dir) / f"{s.namespace}-bench.log")
        click.echo(f"freshness over {probes} probes ...")
        fresh = freshness(s, probes)
        half = pipe["rate"] / 2 if rate is None else rate
        what = "half that rate" if rate is None else "a set rate"
        click.echo(f"freshness over {probes} probes at {what} ({half:.0f} events/s) ...")
        if profile:
            out.mkdir(parents=True, exist_ok=True)
            with Profiler(worker.proc.pid, out / f"bench-{stamp}-worker.pyspy") as prof:
                loaded = freshness(s, probes, background_rate=half)
            loaded["worker_profile"] = prof.result
        else:
            loaded = freshness(s, probes, background_rate=half)
        vectors = replica_recall(s)
    finally:
        if worker is not None:
            worker.stop()
        if started_stack:
            stack.down(base)
        else:
            discard_after(s)
    report = {
        "command": "make bench",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "broker": stack.broker_label(state),
        "partitions": s.partitions,
        "noop_agent": noop,
        "pipeline": pipe,
        "pipeline_vs_noop": pipe["rate"] / noop["rate"],
        "freshness": fresh,
        "freshness_at_half_rate" if rate is None else "freshness_at_set_rate": loaded,
        "item_vector_ann": vectors,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report, indent=2))
    click.echo(f"written to {path}")
    return report
