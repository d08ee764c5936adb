"""ANN recall of an item-vector replica rebuilt from the item-vectors topic (``kapparec bench``).

What every worker holds is exactly this: the compacted topic replayed into a
``VectorReplica`` at the shipped index parameters. Rebuilding it here, outside the worker,
measures the same graph parameters on the same records without reaching into the worker
process; the worker's own replica size (its ``kapparec_table_keys{table="item_vectors"}``
gauge) is read back to show that it holds as many items.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agents.metrics import ANN, TABLE_KEYS, Metric, gauges_key
from agents.vector_replica import GAUGE, replica_params
from streams.models.index import ann_recall
from streams.models.replica import VectorReplica, decode_value
from streams.models.vectors import VectorParams, VectorRecord
from streams.security import librdkafka_security
from streams.settings import Settings
from streams.topics import build_topics


def read_records(s: Settings, quiet_s: float = 2.0) -> list[tuple[VectorRecord, int]]:
    """Every record of the item-vectors topic, in log order per partition."""
    spec = build_topics(s).item_vectors
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_bootstrap,
            "group.id": f"{s.app_id}-recall",  # required by librdkafka; nothing is committed
            "enable.auto.commit": False,
            **librdkafka_security(s),
        }
    )
    dim = VectorParams().dim
    out: list[tuple[VectorRecord, int]] = []
    try:
        consumer.assign(
            [TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
        )
        while True:
            batch = consumer.consume(num_messages=10_000, timeout=quiet_s)
            if not batch:
                return out
            for m in batch:
                if m.error() is None:
                    key = (m.key() or b"").decode()
                    out.append((decode_value(key, m.value(), dim), m.timestamp()[1]))
    finally:
        consumer.close()


def worker_gauges(s: Settings, metric: Metric, *labels: str) -> dict[str, float]:
    """One gauge of every running worker, by worker id, read from Redis."""
    r = redis.Redis.from_url(s.redis_url)
    out: dict[str, float] = {}
    try:
        for key in r.scan_iter(match=gauges_key(s.namespace, "*")):
            for name, value in r.hgetall(key).items():
                parsed = orjson.loads(name)
                if parsed[0] == metric.name and tuple(parsed[4:]) == labels:
                    out[str(parsed[3])] = float(value)
    finally:
        r.close()
    return out


def live_replica_items(s: Settings) -> dict[str, float]:
    """Each running worker's replica size, from its gauges in Redis."""
    return worker_gauges(s, TABLE_KEYS, GAUGE)


def replica_recall(s: Settings, k: int = 10, queries: int = 500) -> dict[str, Any]:
    """Recall@k of a replica rebuilt from the topic, vs exact search, at the ``ef`` its
    calibration chose; beside it the ``ef`` and recall each live worker's gauges report.

    Queries are item vectors of the replica (what a similar-items list asks), a seeded
    sample of ``queries``; the query item itself counts in both result sets.
    """
    started = time.perf_counter()
    records = read_records(s)
    replica = VectorReplica(replica_params(s))
    replica.step(records, now_ms=0, track=False)
    replica.flush(0)
    built_s = time.perf_counter() - started
    items = replica.items()
    rng = np.random.default_rng(0)
    picks = rng.choice(len(items), size=min(queries, len(items)), replace=False)
    mat = np.stack([v for i in picks if (v := replica.vector(items[i])) is not None])
    started = time.perf_counter()
    recall = ann_recall(replica.index, mat, k)
    return {
        "records": len(records),
        "items": len(replica),
        "live_replica_items": live_replica_items(s),
        "live_replica_ef": worker_gauges(s, ANN, "ef"),
        "live_replica_calibrated_recall": worker_gauges(s, ANN, "recall"),
        "queries": len(mat),
        "k": k,
        "ef": replica.index.ef,
        "calibrated_recall": replica.index.recall,
        "recall": recall,
        "rebuild_s": built_s,
        "recall_s": time.perf_counter() - started,
    }
