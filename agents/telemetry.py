"""What the API shows about the system: Prometheus text for /metrics, JSON for the dashboard.

Sources: worker-side totals in Redis (agents/metrics.py), the A/B report and drift alerts
other jobs write to Redis, the consumer lag asked of Kafka (cached, in a thread, because
the Kafka client blocks), and this process's own request counters. With several HTTP
processes the request counters use prometheus_client's multiprocess mode, so any process
answering a scrape reports the sum of all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from agents import metrics as m
from streams.histograms import cumulative, quantile
from streams.serving import Keys
from streams.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LAG_CACHE_S = 5.0
ALERTS_SHOWN = 50

_OWN = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "kapparec_http_requests",
    "HTTP requests answered, by route and status.",
    ("route", "status"),
    registry=_OWN,
)
HTTP_SECONDS = Histogram(
    "kapparec_http_request_seconds",
    "Time to answer an HTTP request, by route.",
    ("route",),
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=_OWN,
)


def ab_key(namespace: str, version: int) -> str:
    """The A/B report of a version (a JSON string written by the experiment agents)."""
    return Keys(namespace, version).metrics_ab()


def alerts_key(namespace: str, version: int) -> str:
    """Drift alerts of a version, newest first (a list of JSON objects)."""
    return Keys(namespace, version).alerts()


class Telemetry:
    """Gathers figures for one namespace; cheap enough to call on every poll."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._lag: dict[int, tuple[float, dict[str, Any]]] = {}
        self._lag_lock = asyncio.Lock()

    async def ab_report(self, version: int | None) -> dict[str, Any] | None:
        """The A/B report, or None when none was written yet (or it is not valid JSON)."""
        if version is None:
            return None
        raw = await self.redis.get(ab_key(self.settings.namespace, version))
        try:
            report = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            return None
        return report if isinstance(report, dict) else None

    async def alerts(self, version: int | None, limit: int = ALERTS_SHOWN) -> list[dict[str, Any]]:
        """The newest drift alerts; entries that are not JSON objects are skipped."""
        if version is None:
            return []
        out = []
        key = alerts_key(self.settings.namespace, version)
        for raw in await self.redis.lrange(key, 0, limit - 1):
            try:
                alert = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(alert, dict):
                out.append(alert)
        return out

    async def lag(self, version: int) -> dict[str, Any] | None:
        """Consumer lag per input topic of ``version`` (cached); None without a broker."""
        if not self.settings.kafka_bootstrap:
            return None
        async with self._lag_lock:
            hit = self._lag.get(version)
            if hit and time.monotonic() - hit[0] < LAG_CACHE_S:
                return hit[1]
            result = await asyncio.to_thread(_lag_now, self.settings, version)
            self._lag[version] = (time.monotonic(), result)
            return result

    async def overview(self, version: int | None) -> dict[str, Any]:
        """Everything the dashboard shows, for the active ``version``."""
        snap = await m.read_snapshot(self.redis, self.settings.namespace)
        v = str(version) if version is not None else ""
        return {
            "now_ms": int(time.time() * 1000),
            "namespace": self.settings.namespace,
            "version": version,
            "events": _by_label(snap.values(m.EVENTS), v, 1),
            "dead_letters": _by_label(snap.values(m.DEAD_LETTERS), v, 2),
            "freshness_s": _histogram(snap, m.FRESHNESS, v),
            "publish_s": _histogram(snap, m.PUBLISH, v),
            "tables": _by_label(snap.values(m.TABLE_KEYS), v, 2),
            "redis_keys": int(await self.redis.dbsize()),
            "lag": await self.lag(version) if version is not None else None,
            "ab": await self.ab_report(version),
            "alerts": await self.alerts(version),
        }

    async def prometheus(self, version: int | None) -> bytes:
        """The Prometheus text exposition of every figure."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Gathered(await self._gather(version)))
        own = _own_registry()
        return generate_latest(registry) + generate_latest(own)

    async def _gather(self, version: int | None) -> list[Metric]:
        snap = await m.read_snapshot(self.redis, self.settings.namespace)
        families = [_family(f, snap) for f in m.FAMILIES]
        if version is not None:
            active = GaugeMetricFamily("kapparec_active_version", "Version readers are served.")
            active.add_metric([], version)
            families.append(active)
            lag = await self.lag(version)
            families.append(_lag_family(version, lag))
        keys = GaugeMetricFamily("kapparec_redis_keys", "Keys in the serving Redis database.")
        keys.add_metric([], int(await self.redis.dbsize()))
        families.append(keys)
        alerts = GaugeMetricFamily("kapparec_alerts", "Drift alerts held in Redis.")
        held = await self.redis.llen(alerts_key(self.settings.namespace, version)) if version else 0
        alerts.add_metric([], int(held))
        families.append(alerts)
        families.extend(_ab_families(await self.ab_report(version)))
        return families


class _Gathered(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _own_registry() -> CollectorRegistry:
    """This process's request metrics, or all HTTP processes' in multiprocess mode."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return _OWN
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


def _lag_now(settings: Settings, version: int) -> dict[str, Any]:
    from agents.lag import consumer_lag, input_topics

    s = dataclasses.replace(settings, version=version)
    try:
        topics = consumer_lag(s.kafka_bootstrap, s.app_id, input_topics(s), timeout=3.0)
    except Exception as exc:  # shown on the dashboard, never fatal for the API
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"topics": topics, "total": sum(topics.values())}


def _by_label(values: dict[tuple[str, ...], float], version: str, index: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for labels, value in values.items():
        if labels and labels[0] == version and len(labels) > index:
            out[labels[-1]] = out.get(labels[-1], 0) + int(value)
    return dict(sorted(out.items()))


def _histogram(snap: m.Snapshot, metric: m.Metric, version: str) -> dict[str, Any]:
    counts = {
        labels[1]: v for labels, v in snap.values(metric, "bucket").items() if labels[0] == version
    }
    buckets = cumulative(counts, metric.buckets)
    total = buckets[-1][1]
    return {
        "count": int(total),
        "sum": snap.values(metric, "sum").get((version,), 0.0),
        "p50": quantile(0.5, buckets),
        "p99": quantile(0.99, buckets),
        "buckets": [["+Inf" if le == math.inf else le, int(c)] for le, c in buckets],
    }


def _family(metric: m.Metric, snap: m.Snapshot) -> Metric:
    if metric.kind == "counter":
        c = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
        for labels, value in sorted(snap.values(metric).items()):
            c.add_metric(list(labels), value)
        return c
    if metric.kind == "gauge":
        g = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
        for labels, value in sorted(snap.values(metric).items()):
            g.add_metric(list(labels), value)
        return g
    h = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    for (version,), total in sorted(snap.values(metric, "sum").items()):
        counts = {lb[1]: v for lb, v in snap.values(metric, "bucket").items() if lb[0] == version}
        cum = cumulative(counts, metric.buckets)
        h.add_metric(
            [version], [("+Inf" if le == math.inf else repr(le), c) for le, c in cum], total
        )
    return h


def _lag_family(version: int, lag: dict[str, Any] | None) -> Metric:
    g = GaugeMetricFamily(
        "kapparec_consumer_lag",
        "Messages not yet processed, per input topic.",
        labels=["version", "topic"],
    )
    for topic, n in sorted(((lag or {}).get("topics") or {}).items()):
        g.add_metric([str(version), topic], n)
    return g


def _ab_families(report: dict[str, Any] | None) -> list[Metric]:
    variants = (report or {}).get("variants") or {}
    fams = {
        name: GaugeMetricFamily(f"kapparec_ab_{name}", text, labels=["variant"])
        for name, text in (
            ("impressions", "Impressions per variant (A/B report)."),
            ("clicks", "Clicks per variant (A/B report)."),
            ("conversions", "Conversions per variant (A/B report)."),
            ("ctr", "Click-through rate per variant (A/B report)."),
            ("ctr_low", "Lower bound of the CTR interval per variant."),
            ("ctr_high", "Upper bound of the CTR interval per variant."),
        )
    }
    for variant, row in sorted(variants.items()):
        if not isinstance(row, dict):
            continue
        interval = row.get("ctr_ci") or [None, None]
        values = {**row, "ctr_low": interval[0], "ctr_high": interval[1]}
        for name, fam in fams.items():
            if isinstance(values.get(name), int | float):
                fam.add_metric([str(variant)], float(values[name]))
    out: list[Metric] = list(fams.values())
    test = (report or {}).get("test") or {}
    if isinstance(test.get("p_value"), int | float):
        p = GaugeMetricFamily("kapparec_ab_p_value", "p-value of the A/B test.", labels=["method"])
        p.add_metric([str(test.get("method", ""))], float(test["p_value"]))
        out.append(p)
    return out
