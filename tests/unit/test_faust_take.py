"""Batches handed out as soon as the agent is free (agents/faust_take.py), on Faust's own
agent test harness: a real stream, its processors, acknowledgements and channel queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.app import _finish
from agents.faust_take import take_batches

LONG_S = 5.0  # a gathering limit no test waits for


def _agent(
    max_: int,
    handle: Callable[[list[Any]], Awaitable[None]],
    within: float = LONG_S,
    window: bool = False,
) -> Any:
    app = faust.App("take-test", broker="kafka://127.0.0.1:1")  # never connected

    @app.agent()
    async def agent(stream: Any) -> None:
        async for batch in take_batches(stream, max_, within, window):
            await _finish(app, "take-test", handle(batch))  # as the workers run them

    return agent


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.005)


def test_an_idle_agent_hands_an_event_out_at_once() -> None:
    """No window to wait out: ``take_events`` would hold it for ``within`` (5 s here)."""
    got: list[tuple[list[Any], float]] = []

    async def handle(batch: list[Any]) -> None:
        got.append(([e.value for e in batch], time.monotonic()))

    async def main() -> None:
        async with _agent(100, handle).test_context() as agent:
            await asyncio.sleep(0.1)
            sent = time.monotonic()
            await agent.put(1, wait=False)
            await _until(lambda: bool(got))
            assert [v for v, _ in got] == [[1]]
            assert got[0][1] - sent < LONG_S / 2

    _run(main())


def test_what_queued_while_a_batch_was_handled_is_the_next_batch() -> None:
    release = asyncio.Event()
    got: list[list[Any]] = []
    acked_while_handled: list[bool] = []

    async def handle(batch: list[Any]) -> None:
        got.append([e.value for e in batch])
        acked_while_handled.append(any(e.message.acked for e in batch))
        if len(got) == 1:
            await release.wait()

    async def main() -> None:
        async with _agent(100, handle).test_context() as agent:
            first = await agent.put(0, wait=False)
            await _until(lambda: bool(got))
            queued = [await agent.put(n, wait=False) for n in range(1, 31)]
            await asyncio.sleep(0.1)
            assert got == [[0]]  # the handler is busy: the rest waits
            assert not first.message.acked  # acknowledged only once handled
            release.set()
            await _until(lambda: len(got) == 2)
            assert first.message.acked
            assert got == [[0], list(range(1, 31))]  # one batch, in order, at once
            await agent.put(31, wait=False)
            await _until(lambda: len(got) == 3)  # the next batch asked for: the last acked
            assert all(e.message.acked for e in queued)
            assert acked_while_handled == [False, False, False]

    _run(main())


def test_a_batch_holds_at_most_max_events() -> None:
    release = asyncio.Event()
    got: list[list[Any]] = []

    async def handle(batch: list[Any]) -> None:
        got.append([e.value for e in batch])
        if len(got) == 1:
            await release.wait()

    async def main() -> None:
        async with _agent(10, handle).test_context() as agent:
            await agent.put(0, wait=False)
            await _until(lambda: bool(got))
            for n in range(1, 26):
                await agent.put(n, wait=False)
            release.set()
            await _until(lambda: sum(map(len, got)) == 26)
            assert got == [[0], list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]

    _run(main())


def test_an_event_whose_followers_were_cleared_away_still_goes_out() -> None:
    """A revocation or a stop suspends flow control and clears the channel queue, then
    waits until every event taken is acknowledged. An event already in the buffer, its
    followers cleared, must still be handed out (after ``within``) or that wait never
    ends."""
    got: list[list[Any]] = []

    async def handle(batch: list[Any]) -> None:
        got.append([e.value for e in batch])

    agent = _agent(100, handle, within=0.3)

    async def main() -> None:
        async with agent.test_context() as tested:
            await asyncio.sleep(0.05)
            queue = tested.stream().channel.queue
            first = await tested.put(1, wait=False)
            await tested.put(2, wait=False)
            for _ in range(1000):  # the first taken into the buffer, the second queued
                if queue.qsize() == 1:
                    break
                await asyncio.sleep(0)
            assert queue.qsize() == 1
            agent.app.flow_control.suspend()
            agent.app.flow_control.clear()
            await _until(lambda: got == [[1]])
            await _until(lambda: first.message.acked)  # what the revocation waits for

    _run(main())


def test_with_a_window_a_batch_goes_out_every_within_or_when_full() -> None:
    got: list[tuple[list[Any], float]] = []

    async def handle(batch: list[Any]) -> None:
        got.append(([e.value for e in batch], time.monotonic()))

    async def main() -> None:
        async with _agent(3, handle, within=2.0, window=True).test_context() as agent:
            start = time.monotonic()
            for n in range(5):
                await agent.put(n, wait=False)
            await _until(lambda: bool(got))
            await asyncio.sleep(0.3)
            assert [v for v, _ in got] == [[0, 1, 2]]  # full: at once; the rest waits
            await _until(lambda: len(got) == 2)
            assert [v for v, _ in got] == [[0, 1, 2], [3, 4]]
            assert got[0][1] - start < 2.0 <= got[1][1] - start

    _run(main())


def test_a_stop_during_a_batch_acknowledges_it_only_once_handled() -> None:
    """The agent stops (a shutdown, a rebalance) while a batch is handled: the handler
    runs on, shielded, and its events are acknowledged after it returned, not before
    (Faust closes the generators of ``take_events`` at a stop, acknowledging the batch in
    hand at once)."""
    seen: list[tuple[str, bool]] = []

    async def handle(batch: list[Any]) -> None:
        seen.append(("start", batch[0].message.acked))
        await asyncio.sleep(0.3)
        seen.append(("end", batch[0].message.acked))

    async def main() -> None:
        for window in (False, True):
            seen.clear()
            async with _agent(1, handle, within=0.05, window=window).test_context() as agent:
                await agent.put(1, wait=False)
                await _until(lambda: bool(seen))
            await _until(lambda: len(seen) == 2)
            assert seen == [("start", False), ("end", False)], window

    _run(main())
