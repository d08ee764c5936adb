"""Merging trending partials is background work: it steps aside for the ingest's batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from agents.control import HEADER, REFRESH
from agents.items import MAX_TS, MergeTrending
from agents.loop_priority import LoopPriority
from streams.serving import Keys, decode
from streams.settings import Settings
from tests.unit.urgent_batch import turns, urgent_batch

T0 = 1_700_000_000_000


class _Table(dict):  # type: ignore[type-arg]
    """A table as the handler reads it: ``get``, ``keys`` and the store's ``data``."""

    @property
    def data(self) -> dict[str, Any]:
        return self


class _Publisher:
    def __init__(self, settings: Settings) -> None:
        self.keys = Keys(settings.namespace, settings.version)
        self.written: dict[str, bytes] = {}

    async def write(self, writes: list[tuple[str, bytes, int]]) -> None:
        self.written.update((key, value) for key, value, _ in writes)


def _refresh(merge: MergeTrending) -> asyncio.Task[None]:
    event = SimpleNamespace(message=SimpleNamespace(headers=[(HEADER, REFRESH)]))
    return asyncio.create_task(merge.handle(event))


def test_a_refresh_of_many_categories_waits_for_an_urgent_batch_and_then_publishes_all() -> None:
    settings = Settings(namespace="t", redis_url="redis://unused", partitions=2)
    partials = _Table({MAX_TS: T0})
    for c in range(40):
        for p in range(2):
            partials[f"{p}/cat{c}"] = {"t": [[f"i{c}-{p}", 1.0 + p]], "p": [[f"i{c}-{p}", 2.0]]}
    publisher = _Publisher(settings)
    priority = LoopPriority(quantum_s=0.0)
    merge = MergeTrending(settings, partials, _Table(), publisher, priority=priority)  # type: ignore[arg-type]

    async def scenario() -> tuple[bool, bool]:
        async with urgent_batch(priority):
            refresh = _refresh(merge)
            await turns()
            during = refresh.done()
        await refresh
        # with nothing urgent, the same refresh runs through
        again = _refresh(merge)
        await turns()
        return during, again.done()

    during, unhindered = asyncio.run(scenario())
    assert not during and unhindered
    keys = publisher.keys
    assert len(publisher.written) == 80  # trending and popular of every category
    top = decode(publisher.written[keys.trending("cat7")])
    assert top is not None and [row[0] for row in top["items"]] == ["i7-1", "i7-0"]
