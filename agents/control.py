"""Control messages: requests to workers that travel in the data topics, in order.

A refresh request is one message per ``interactions`` partition, marked by the
``kapparec-control`` header, so every worker that owns a partition sees it after
all earlier events of that partition. Each worker then recomputes the lists of all
its users. Issued once the log is drained, it makes every published list a pure
function of the log (as a replay before promotion needs); completion is zero lag.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from agents.faust_batches import header_pairs
from agents.lag import wait_past_now
from agents.producer import producer_config
from streams.settings import Settings
from streams.topics import build_topics

HEADER = "kapparec-control"
REFRESH = b"refresh"
# On item-delta partitions: ``[[item_id, category], ...]`` whose catalogue category is new
RECATEGORIZE = b"recategorize"


def control_of(headers: Any) -> bytes | None:
    """The control verb in a message's headers, or ``None`` for a data message (a header
    with a null value, which Kafka allows, included)."""
    for key, value in header_pairs(headers):
        if key == HEADER:
            return value
    return None


# The body of a refresh request (see request_refresh): epoch ms, "-", 8 hex digits.
_REQUEST_ID = re.compile(rb"[0-9]{1,16}-[0-9a-f]{8}")


def refresh_request(msg: Any) -> bytes | None:
    """The request id of a refresh request on ``interactions``, else ``None``.

    Producers share the topic, so the header alone does not make a control message: a
    record whose body is not a request id is data, decoded (or dead-lettered) as any
    other, rather than a reason to recompute every list.
    """
    if control_of(msg.headers) != REFRESH:
        return None
    value = msg.value
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


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
    """Wait until the log as of now is processed, request a refresh, wait until it is
    processed too: the lists then reflect every record before the request. Events that
    keep coming (live traffic) do not hold it up (see ``agents.lag.wait_past_now``)."""
    wait_past_now(settings, timeout, on_poll=on_poll)
    request = request_refresh(settings)
    wait_past_now(settings, timeout, on_poll=on_poll)
    return request
