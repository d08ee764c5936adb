"""Faust's worker consumer takes its fetch wait from the settings (agents/faust_fetch.py)."""

from __future__ import annotations

from pathlib import Path

from agents import faust_fetch
from agents.app import _faust_app
from streams.settings import load_settings


async def test_worker_consumer_waits_at_most_the_configured_time(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0",
        state_dir=tmp_path, fetch_max_wait_ms=123,
    )  # fmt: skip
    app = _faust_app(settings)
    thread = app.consumer._thread
    assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 1500  # Faust's
    faust_fetch.install(app, settings.fetch_max_wait_ms)
    assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 123
