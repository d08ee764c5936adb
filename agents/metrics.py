"""Worker-side metrics: counted in process, added into Redis once a second, read by the API.

Why Redis and not a ``/metrics`` port per worker: workers come and go with rebalances and
may run on other hosts, while the HTTP API already reads Redis. Each worker adds its
deltas into one hash per namespace (``HINCRBY`` sums over workers), so one scrape of the
API's ``/metrics`` gives cluster totals with no service discovery, and the dashboard
reads the very same figures. The cost is one pipelined write per worker per second; a
worker that crashes loses at most one interval of counts. Gauges are per worker, in a
hash of their own that expires when the worker stops refreshing it.

Instrumentation points call the process-wide :data:`WORKER`; one worker process runs one
version, which :meth:`Recorder.bind` sets.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: Prometheus name, kind, help text, label names, buckets."""

    name: str
    kind: str  # "counter", "histogram" or "gauge"
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


EVENTS = Metric(
    "kapparec_events", "counter", "Interactions ingested, by event type.", ("version", "type")
)
DEAD_LETTERS = Metric(
    "kapparec_dead_letters",
    "counter",
    "Records sent to a dead-letter topic, by source topic and reason.",
    ("version", "topic", "reason"),
)
FRESHNESS = Metric(
    "kapparec_freshness_seconds",
    "histogram",
    "Event time of a user's newest event to the user's list written in Redis.",
    ("version",),
    (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400),
)
PUBLISH = Metric(
    "kapparec_publish_seconds",
    "histogram",
    "Duration of one pipelined Redis write of published lists.",
    ("version",),
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
LOOP_LAG = Metric(
    "kapparec_loop_lag_seconds",
    "histogram",
    "How late a worker's event loop ran a heartbeat due every quarter of "
    "KAPPAREC_LOOP_STALL_MS: how long other code held the loop (all agents share it).",
    ("version",),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TABLE_KEYS = Metric(
    "kapparec_table_keys",
    "gauge",
    "Keys held in a worker's state tables (its share of the users, items, catalogue).",
    ("version", "worker", "table"),
)
ANN = Metric(
    "kapparec_ann",
    "gauge",
    "A worker's HNSW replica: the query breadth in use (figure=ef) and the recall its "
    "last calibration measured against exact search (figure=recall).",
    ("version", "worker", "figure"),
)
FAMILIES = (EVENTS, DEAD_LETTERS, FRESHNESS, PUBLISH, LOOP_LAG, TABLE_KEYS, ANN)
BY_NAME = {m.name: m for m in FAMILIES}


def counters_key(namespace: str) -> str:
    """Hash of cluster-wide counter and histogram totals."""
    return f"{namespace}:metrics:counters"


def gauges_key(namespace: str, worker: str) -> str:
    """Hash of one worker's gauges (expires when the worker stops)."""
    return f"{namespace}:metrics:gauges:{worker}"


def field(metric: Metric, part: str, *labels: str) -> bytes:
    """Hash field of one series: ``[name, part, *label values]`` as JSON."""
    return orjson.dumps([metric.name, part, *labels])


class Recorder:
    """Deltas since the last flush; cheap to update from the hot path."""

    def __init__(self) -> None:
        self.version = ""
        self.worker = ""
        self.namespace = ""
        self.pending: defaultdict[bytes, float] = defaultdict(float)
        self.gauges: dict[bytes, float] = {}

    def bind(self, namespace: str, version: int, worker: str) -> None:
        """Label what this process records with its version and worker id."""
        self.namespace, self.version, self.worker = namespace, str(version), worker

    def event(self, event_type: str) -> None:
        """Count one ingested interaction."""
        self.pending[field(EVENTS, "", self.version, event_type)] += 1

    def dead_letter(self, topic: str, reason: str) -> None:
        """Count one dead-lettered record."""
        self.pending[field(DEAD_LETTERS, "", self.version, topic, reason)] += 1

    def freshness(self, event_ts_ms: Iterable[int]) -> None:
        """Observe event time -> now for lists just written (event times in epoch ms)."""
        now_ms = time.time() * 1000
        for ts in event_ts_ms:
            if ts > 0:
                self.observe(FRESHNESS, max(0.0, (now_ms - ts) / 1000))

    def observe(self, metric: Metric, value: float) -> None:
        """Add one observation to a histogram."""
        i = bisect.bisect_left(metric.buckets, value)
        le = repr(float(metric.buckets[i])) if i < len(metric.buckets) else "+Inf"
        self.pending[field(metric, "bucket", self.version, le)] += 1
        self.pending[field(metric, "sum", self.version)] += value
        self.pending[field(metric, "count", self.version)] += 1

    def gauge(self, metric: Metric, value: float, *labels: str) -> None:
        """Set one of this worker's gauges."""
        self.gauges[field(metric, "", self.version, self.worker, *labels)] = value

    async def flush(self, redis: aioredis.Redis, gauge_ttl_s: int = 30) -> int:
        """Add pending deltas into Redis and refresh this worker's gauges; returns fields sent."""
        if not self.namespace:
            return 0
        pending, self.pending = self.pending, defaultdict(float)
        gauges = dict(self.gauges)
        if not pending and not gauges:
            return 0
        counters = counters_key(self.namespace)
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for name, delta in pending.items():
                    if delta.is_integer():
                        pipe.hincrby(counters, name, int(delta))
                    else:
                        pipe.hincrbyfloat(counters, name, delta)
                if gauges:
                    key = gauges_key(self.namespace, self.worker)
                    pipe.hset(key, mapping=gauges)  # type: ignore[arg-type]
                    pipe.expire(key, gauge_ttl_s)
                await pipe.execute()
        except Exception:
            # Not lost, only late: the deltas go out with the next flush.
            for name, delta in pending.items():
                self.pending[name] += delta
            raise
        return len(pending) + len(gauges)


WORKER = Recorder()


@dataclass
class Snapshot:
    """Worker-side series read back from Redis: ``(name, part, labels) -> value``."""

    series: dict[tuple[str, str, tuple[str, ...]], float]

    def values(self, metric: Metric, part: str = "") -> dict[tuple[str, ...], float]:
        """Series of ``metric`` (and histogram ``part``) by label values."""
        return {
            labels: v
            for (name, p, labels), v in self.series.items()
            if name == metric.name and p == part
        }


async def read_snapshot(redis: aioredis.Redis, namespace: str) -> Snapshot:
    """Cluster totals and live workers' gauges of ``namespace``."""
    raw: dict[Any, Any] = dict(await redis.hgetall(counters_key(namespace)))
    gauge_keys = [k async for k in redis.scan_iter(match=gauges_key(namespace, "*"), count=100)]
    if gauge_keys:
        async with redis.pipeline(transaction=False) as pipe:
            for k in gauge_keys:
                pipe.hgetall(k)
            for h in await pipe.execute():
                raw.update(h)
    series: dict[tuple[str, str, tuple[str, ...]], float] = {}
    for name, value in raw.items():
        parsed = orjson.loads(name)
        if isinstance(parsed, list) and len(parsed) >= 2 and parsed[0] in BY_NAME:
            series[(parsed[0], parsed[1], tuple(map(str, parsed[2:])))] = float(value)
    return Snapshot(series)
