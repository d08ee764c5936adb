"""Keep Faust's livelock check from crashing the consumer while a partition is being reset.

Every 2.5 commit intervals Faust checks, for each assigned partition, that events still
flow; it reads the partition's fetch position from aiokafka. While a seek to the
beginning is being resolved (the position is reset, awaiting a ``ListOffsets`` answer)
aiokafka holds no position and asserts on reading it: the assertion crashed the consumer
service and with it the worker. Such a partition is about to be read from its start, so
there is nothing to check yet: the check skips it until it has a position again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.faust_patch import replace


def has_position(consumer: Any, tp: Any) -> bool:
    """Whether ``consumer`` (an ``AIOKafkaConsumer``) holds a fetch position for ``tp``."""
    assignment = consumer._fetcher._subscriptions.subscription.assignment
    if assignment is None:
        return False
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    return state is not None and bool(state.has_valid_position)


def _guarded(original: Callable[[Any, float, Any], None]) -> Callable[[Any, float, Any], None]:
    def verify_event_path(self: Any, now: float, tp: Any) -> None:
        if has_position(self._ensure_consumer(), tp):
            original(self, now, tp)

    return verify_event_path


def install() -> None:
    """Guard Faust's aiokafka ``verify_event_path`` (idempotent)."""
    replace(faust_aiokafka.AIOKafkaConsumerThread, _guarded, "verify_event_path")
