"""A/B test end to end: variant-stamped lists, simulated shoppers, the report, drift, recs-out.

Real broker, real Redis, a real worker process. Variant B's shoppers click twice as
often as A's; then A's preference collapses mid-run. The report in Redis must show B
ahead with a significant test, its counts must equal what the simulator sent, and the
collapse must raise a drift alert on the alerts topic and in the Redis list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from agents.export import export_lists
from agents.producer import produce
from agents.simulator import find_users, simulate
from infra.workers import WorkerProcess
from streams.experiments import assign
from streams.export import parse_segment
from streams.serving import Keys
from streams.settings import Settings
from streams.simulation import Preference
from streams.sources import synthetic
from streams.topics import build_topics
from tests.integration.test_pipeline import drain, read_topic

SPLIT = "A:50,B:50"


@pytest.fixture
def settings(fast_settings: Callable[..., Settings]) -> Settings:
    """An A/B split, a short attribution window and a fast report."""
    return fast_settings(ab_split=SPLIT, ab_salt="exp-42", ab_window_s=5.0, metrics_interval_s=1.0)


def wait_for(check: Callable[[], Any], worker: WorkerProcess, timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        assert worker.alive, f"worker died:\n{worker.tail()}"
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_ab_report_drift_alert_and_recs_out(settings: Settings, worker: WorkerProcess) -> None:
    events = list(synthetic(n_users=200, n_items=80, n_events=2500, seed=11))
    assert produce(settings, events, progress=False).ok
    drain(settings, worker)
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)

    # Every published list is stamped with the variant the salted hash assigns.
    users = asyncio.run(find_users(settings, 1000))
    assert set(users) == {e.user_id for e in events if hasattr(e, "user_id")}
    for uid in users[:50]:
        record = orjson.loads(r.get(keys.user(uid)) or b"{}")
        assert record["variant"] == assign(uid, "exp-42", (("A", 50), ("B", 50)))

    before = Preference({"A": 0.2, "B": 0.45})
    after = Preference({"A": 0.01, "B": 0.45})
    summary = simulate(
        settings, users, 2000, before, shift_at=1200, shifted=after, seed=5, progress=False
    )
    assert set(summary.impressions) == {"A", "B"}
    drain(settings, worker)

    def report() -> dict[str, Any] | None:
        raw = r.get(keys.metrics_ab())
        doc = orjson.loads(raw) if raw else None
        counted = {v: d["impressions"] for v, d in (doc or {}).get("variants", {}).items()}
        return doc if counted == dict(summary.impressions) else None

    doc = wait_for(report, worker, 60, "a report covering every simulated impression")
    assert set(doc) == {"variants", "test", "by_source", "updated_ms"}
    a, b = doc["variants"]["A"], doc["variants"]["B"]
    for v in (a, b):
        assert set(v) == {"impressions", "clicks", "conversions", "ctr", "ctr_ci"}
        assert v["ctr_ci"][0] <= v["ctr"] <= v["ctr_ci"][1]
    # Every click the simulator sent names its list, so none is lost in the join.
    assert (a["clicks"], b["clicks"]) == (summary.clicks["A"], summary.clicks["B"])
    assert b["ctr"] > a["ctr"]
    assert doc["test"]["significant"] is True and doc["test"]["leader"] == "B"
    assert doc["test"]["p_value"] < 0.05
    assert sum(s["impressions"] for s in doc["by_source"].values()) > 0

    # A's collapse raised a drift alert: in the Redis list and on the alerts topic.
    alerts = wait_for(
        lambda: [orjson.loads(x) for x in r.lrange(keys.alerts(), 0, -1)], worker, 30, "alerts"
    )
    assert {"ts_ms", "detector", "variant", "message"} == set(alerts[0])
    assert any(x["detector"] == "ctr" and x["variant"] == "A" for x in alerts), alerts
    topic = build_topics(settings).alerts
    on_topic = [orjson.loads(m.value()) for m in read_topic(settings, topic.name, len(alerts))]
    assert sorted(orjson.dumps(x) for x in on_topic) == sorted(orjson.dumps(x) for x in alerts)

    # recs-out carries the same records as Redis: the latest per user equals the stored one.
    out = read_topic(settings, build_topics(settings).recs_out.name, 10_000, timeout=10)
    latest = {m.key().decode(): m.value() for m in out}
    assert set(latest) == set(users)
    for uid in users[:50]:
        assert latest[uid] == r.get(keys.user(uid))


def test_export_writes_all_or_a_segment(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    events = list(synthetic(n_users=60, n_items=40, n_events=600, seed=2))
    assert produce(settings, events, progress=False).ok
    drain(settings, worker)
    users = set(asyncio.run(find_users(settings, 1000)))
    assert users == {e.user_id for e in events if hasattr(e, "user_id")}
    every = tmp_path / "all.jsonl"
    assert export_lists(settings, every, "jsonl", progress=False)[1] == len(users)
    lines = [orjson.loads(x) for x in every.read_bytes().splitlines()]
    assert {x["user_id"] for x in lines} == users
    only_b = tmp_path / "b.csv"
    _, written = export_lists(settings, only_b, "csv", parse_segment("variant=B"), progress=False)
    rows = only_b.read_text().splitlines()
    want = {x["user_id"] for x in lines if x["variant"] == "B"}
    assert written == len(want) and 0 < written < len(users)
    assert rows[0].startswith("user_id,rank,item_id")
    assert {row.split(",")[0] for row in rows[1:]} == want
