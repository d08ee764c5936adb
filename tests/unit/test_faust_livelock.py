"""The livelock check skips a partition whose position is being reset (agents/faust_livelock.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.subscription_state import SubscriptionState

from agents.faust_livelock import _guarded, has_position

TP = TopicPartition("t", 0)


def _consumer() -> tuple[Any, SubscriptionState]:
    # aiokafka's subscription state binds to the running loop: build it in an async test.
    subscriptions = SubscriptionState()
    subscriptions.assign_from_user({TP})
    return SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions)), subscriptions


async def test_a_partition_awaiting_reset_has_no_position_and_the_raw_read_asserts() -> None:
    consumer, subscriptions = _consumer()
    state = subscriptions.subscription.assignment.state_value(TP)
    assert not has_position(consumer, TP)
    with pytest.raises(AssertionError):  # what crashed Faust's consumer service
        _ = state.position
    state.seek(7)
    assert has_position(consumer, TP)


async def test_the_check_runs_only_once_the_partition_has_a_position() -> None:
    consumer, subscriptions = _consumer()
    checked: list[Any] = []
    thread = SimpleNamespace(_ensure_consumer=lambda: consumer)
    verify = _guarded(lambda self, now, tp: checked.append(tp))
    verify(thread, 0.0, TP)
    assert checked == []
    subscriptions.subscription.assignment.state_value(TP).seek(3)
    verify(thread, 0.0, TP)
    assert checked == [TP]
