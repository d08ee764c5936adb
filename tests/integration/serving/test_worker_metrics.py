"""A real worker's figures reach the API's /metrics and overview through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import redis
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from agents.admin import ensure_topics
from agents.producer import produce, produce_raw
from agents.server import listening_socket, uvicorn_config
from infra.workers import WorkerProcess
from schemas.events import Interaction
from streams.settings import Settings
from streams.topics import build_topics

T0 = int(time.time() * 1000) - 5_000


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


async def test_worker_counts_events_dead_letters_and_freshness(
    make_settings: Callable[..., Settings], namespace: str, tmp_path: Path
) -> None:
    s = make_settings(
        topic_prefix=f"{namespace}.", settle_s=0.0, flush_interval_s=0.2, metrics_flush_s=0.2
    )
    ensure_topics(s.kafka_bootstrap, build_topics(s).all())
    events = [
        Interaction(f"e{i}", kind, f"u{i % 3}", f"i{i}", T0 + i)
        for i, kind in enumerate(["view"] * 5 + ["purchase"] * 2)
    ]
    assert produce(s, events, progress=False).ok
    produce_raw(s, build_topics(s).interactions.name, b"u9", b"{not json")
    worker = WorkerProcess(s, tmp_path / "w.log", worker_id="w1")
    server = uvicorn.Server(uvicorn_config(s))  # type: ignore[arg-type]
    sock = listening_socket("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 90
            overview: dict[str, object] = {}
            while time.monotonic() < deadline:
                assert worker.alive, worker.tail()
                if server.started:
                    async with http.get(base + "/api/overview") as r:
                        overview = await r.json()
                    # Counts are flushed once a second, and an event is counted when
                    # ingested, before its user's list is written: wait for all three.
                    if (
                        overview["events"] == {"purchase": 2, "view": 5}
                        and overview["dead_letters"]
                        and overview["freshness_s"]["count"] >= 3  # type: ignore[index]
                    ):
                        break
                await asyncio.sleep(0.5)
            assert overview["events"] == {"purchase": 2, "view": 5}, overview
            assert overview["dead_letters"] == {"not_json": 1}
            fresh = overview["freshness_s"]
            assert isinstance(fresh, dict) and fresh["count"] >= 3  # one per user list written
            assert overview["lag"] is not None
            async with http.get(base + "/metrics") as r:
                samples = _samples(await r.text())
        assert samples[("kapparec_events_total", (("type", "view"), ("version", "1")))] == 5
        table = (("table", "users"), ("version", "1"), ("worker", "w1"))
        assert samples[("kapparec_table_keys", table)] == 3
        assert samples[("kapparec_publish_seconds_count", (("version", "1"),))] >= 1
        assert samples[("kapparec_loop_lag_seconds_count", (("version", "1"),))] >= 1  # heartbeats
    finally:
        server.should_exit = True
        await task
        worker.stop(grace_s=10.0)
        with redis.Redis.from_url(s.redis_url) as client:
            for key in client.scan_iter(match=f"{s.namespace}:*", count=1000):
                client.delete(key)
