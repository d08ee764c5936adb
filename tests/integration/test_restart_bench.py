"""`make bench-restart`'s harness against the real broker and Redis, at a tiny size."""

from __future__ import annotations

from pathlib import Path

import redis

from agents.admin import topics_named
from agents.bench import discard, run_settings
from agents.restart_bench import measure
from streams.serving import Keys
from streams.settings import load_settings
from streams.topics import build_topics
from tests.integration.conftest import Stack


def test_a_restarted_worker_serves_a_new_users_list(stack: Stack, tmp_path: Path) -> None:
    base = load_settings(env={}, state_dir=tmp_path)
    state = {"kafka_bootstrap": stack.kafka_bootstrap, "redis_url": stack.redis_url}
    s = run_settings(base, state, "restart")
    result = measure(s, catalog=60, events=300, runs=2, stop="term", seed=3, timeout=180)

    assert [sorted(run) for run in result["runs"]] == [
        ["launch_to_first_list_s", "produce_to_first_list_s"]
    ] * 2
    for run in result["runs"]:
        assert 0 < run["produce_to_first_list_s"] <= run["launch_to_first_list_s"]
    # Each probe user's list was written by a restarted worker and names shop items.
    r = redis.Redis.from_url(stack.redis_url)
    try:
        keys = Keys(result["namespace"], 1)
        for i in (1, 2):
            raw = r.get(keys.user(f"restart-probe-{i}"))
            assert raw is not None and b'"items":[["i' in raw, raw
        # Left on a stack that outlives the run, its keys, topics and group would stay
        # (catalogue records have no TTL): discard takes them all.
        assert r.exists(keys.item_meta("i1"))
        n_keys, topics = discard(s)
        assert n_keys > 60 and not list(r.scan_iter(match=f"{s.namespace}:*"))
        assert set(topics) >= {t.name for t in build_topics(s).all()}
        assert not topics_named(s.kafka_bootstrap, s.topic_prefix)
    finally:
        r.close()
