"""The A/B report agent writes every batch it folded, even one folded during a write."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

import agents.experiments as ae
from streams.experiment_report import encode_groups
from streams.settings import Settings


class Keys:
    def metrics_ab(self) -> str:
        return "metrics:ab"


class SlowRedis:
    keys = Keys()
    doc: Any = None

    async def write(self, writes: list[tuple[str, bytes, int]]) -> None:
        await asyncio.sleep(0.01)  # a round trip, during which a batch can be folded
        for _, value, _ in writes:
            self.doc = orjson.loads(value)


class Event:
    def __init__(self, raw: bytes) -> None:
        self.message = type("Message", (), {"value": raw})()


def batch(offset: int, variant: str) -> list[Event]:
    return [Event(encode_groups(0, [["imp", offset, [["imp", variant, []]]]]))]


async def _put_all(writes: Any) -> None:
    for table, _, key, value in writes:
        table[key] = value


def test_a_batch_folded_while_the_report_is_written_is_reported_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ae, "put_all", _put_all)

    async def scenario() -> tuple[Any, Any]:
        redis = SlowRedis()
        track = ae.TrackExperiments(Settings(metrics_interval_s=5.0), {}, None, redis, ("A", "B"))
        await track.handle(batch(0, "A"))  # reported at once (the first)
        await track.handle(batch(1, "A"))  # within the interval: waits for the timer
        timer = asyncio.create_task(track.report())
        await asyncio.sleep(0)  # the timer's report is waiting on Redis
        await track.handle(batch(2, "B"))  # folded meanwhile
        await timer
        for _ in range(3):  # later ticks; the traffic has stopped
            await track.report()
        return track.totals["totals"].variants, redis.doc

    totals, doc = asyncio.run(scenario())
    assert totals == {"A": [2, 0, 0], "B": [1, 0, 0]}
    assert {v: d["impressions"] for v, d in doc["variants"].items()} == {"A": 2, "B": 1}
