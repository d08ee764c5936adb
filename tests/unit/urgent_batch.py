"""For tests of background work: an urgent batch in hand, as the ingest holds one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from agents.loop_priority import LoopPriority


@contextlib.asynccontextmanager
async def urgent_batch(priority: LoopPriority) -> AsyncIterator[None]:
    """An urgent block of ``priority`` is in hand for the body of the ``async with``."""
    release = asyncio.Event()

    async def batch() -> None:
        async with priority.urgent():
            await release.wait()

    held = asyncio.create_task(batch())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        release.set()
        await held


async def turns(n: int = 50) -> None:
    """Let the loop run ``n`` times: what a task not held back gets done meanwhile."""
    for _ in range(n):
        await asyncio.sleep(0)
