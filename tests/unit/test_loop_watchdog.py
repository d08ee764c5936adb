"""The loop watchdog names the code that holds the event loop, once per stall."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

import pytest

from agents.loop_watchdog import LoopWatchdog


def _computes_without_awaiting(seconds: float) -> None:
    time.sleep(seconds)  # stands for a handler's long synchronous stretch


async def _run(watchdog: LoopWatchdog, body: Awaitable[None]) -> None:
    task = asyncio.ensure_future(watchdog.run())
    await asyncio.sleep(0.05)
    await body
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_stall_is_reported_once_with_the_blocking_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = LoopWatchdog(0.2)

    async def block() -> None:
        _computes_without_awaiting(1.0)
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, logger="agents.loop_watchdog"):
        asyncio.run(_run(watchdog, block()))
    assert watchdog.stalls == 1
    (record,) = caplog.records
    assert "event loop stalled" in record.getMessage()
    assert "_computes_without_awaiting" in record.getMessage()


def test_a_loop_that_keeps_turning_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    watchdog = LoopWatchdog(0.2)
    with caplog.at_level(logging.WARNING, logger="agents.loop_watchdog"):
        asyncio.run(_run(watchdog, asyncio.sleep(0.8)))
    assert watchdog.stalls == 0
    assert not caplog.records


def test_two_stalls_are_two_reports() -> None:
    watchdog = LoopWatchdog(0.2)

    async def block_twice() -> None:
        _computes_without_awaiting(0.6)
        await asyncio.sleep(0.2)
        _computes_without_awaiting(0.6)
        await asyncio.sleep(0.2)

    asyncio.run(_run(watchdog, block_twice()))
    assert watchdog.stalls == 2


def test_each_heartbeat_reports_how_late_it_ran() -> None:
    lags: list[float] = []
    watchdog = LoopWatchdog(0.2, lags.append)

    async def block() -> None:
        _computes_without_awaiting(0.3)
        await asyncio.sleep(0.2)

    asyncio.run(_run(watchdog, block()))
    assert max(lags) >= 0.25  # the beat due during the block ran that much late
    assert sorted(lags)[0] < 0.05  # the others on time
    assert all(lag >= 0 for lag in lags)
