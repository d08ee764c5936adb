"""Control messages: requests to workers that travel in the data topics, in order.

A refresh request is one message per ``interactions`` partition, marked by the
``kapparec-control`` header, so every worker that owns a partition sees it after
all earlier events of that partition. Each worker then recomputes the lists of all
its users. Issued once the log is drained, it makes every published list a pure
function of the log (as a replay before promotion needs); completion is zero lag.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Producer

from agents.lag import wait_caught_up
from agents.producer import producer_config
from streams.settings import Settings
from streams.topics import build_topics

HEADER = "kapparec-control"
REFRESH = b"refresh"
# On item-delta partitions: ``[[item_id, category], ...]`` whose catalogue category is new
RECATEGORIZE = b"recategorize"


def control_of(headers: Any) -> bytes | None:
    """The control verb in a message's headers, or ``None`` for a data message."""
    if not headers:
        return None
    pairs: Iterable[tuple[str, bytes]] = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if key == HEADER:
            return bytes(value)
    return None


def request_refresh(settings: Settings) -> str:
    """Send a refresh request to every partition of ``interactions``; returns its id."""
    topic = build_topics(settings).interactions
    request = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
    producer = Producer(producer_config(settings))
    for p in range(topic.partitions):
        producer.produce(
            topic.name, value=request.encode(), partition=p, headers=[(HEADER, REFRESH)]
        )
    if producer.flush(30) != 0:
        raise TimeoutError("refresh request not delivered within 30 s")
    return request


def refresh_when_drained(settings: Settings, timeout: float, on_poll: Any = None) -> str:
    """Wait for zero lag, request a refresh, wait for zero lag again: lists are then final."""
    wait_caught_up(settings, timeout, on_poll=on_poll)
    request = request_refresh(settings)
    wait_caught_up(settings, timeout, on_poll=on_poll)
    return request
