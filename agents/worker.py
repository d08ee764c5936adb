"""Start one worker: check services and topics first, so a bad setting fails fast."""

from __future__ import annotations

import logging

import faust

from agents import gc_tuning
from agents.admin import check_kafka, check_redis, ensure_topics
from agents.app import build_app
from streams.security import librdkafka_security, redis_options
from streams.settings import Settings, require
from streams.topics import build_topics


def preflight(settings: Settings) -> None:
    """Fail with a message naming the setting when a service is missing or unreachable."""
    require(settings, "kafka_bootstrap", "redis_url")
    security = librdkafka_security(settings)
    check_kafka(settings.kafka_bootstrap, security=security)
    check_redis(settings.redis_url, **redis_options(settings))
    ensure_topics(settings.kafka_bootstrap, build_topics(settings).all(), security=security)


def run_worker(settings: Settings) -> None:
    """Run a Faust worker of ``settings.version`` until stopped (SIGTERM/SIGINT)."""
    preflight(settings)
    logging.getLogger("agents").setLevel(settings.log_level.upper())
    runtime = build_app(settings)
    worker = faust.Worker(runtime.app, loglevel=settings.log_level, quiet=True)
    # Faust's progress spinner hooks the root logger at DEBUG level, so every debug call
    # in Faust and aiokafka (several per produced message) builds a log record: ~5 % of a
    # busy worker's CPU. A worker runs unattended; without the spinner the level holds.
    worker.spinner = None
    gc_tuning.tune()
    worker.execute_from_commandline()
