"""Background work steps aside for urgent batches on the shared loop (agents/loop_priority.py)."""

from __future__ import annotations

import asyncio

import pytest

from agents.loop_priority import LoopPriority


async def _urgent_batch(p: LoopPriority, awaits: int, log: list[str]) -> None:
    async with p.urgent():
        for _ in range(awaits):  # a batch is short computations between awaits
            await asyncio.sleep(0)
        log.append("urgent done")


async def _background(p: LoopPriority, steps: int, log: list[str]) -> int:
    """Steps of background work; returns how many ran while urgent work was in hand."""
    during = 0
    for _ in range(steps):
        during += p.urgent_now > 0
        await p.step_aside()
    log.append("background done")
    return during


def test_background_waits_for_the_urgent_batch_in_hand() -> None:
    async def run() -> tuple[int, list[str], int]:
        p, log = LoopPriority(quantum_s=0.0), []
        bg = asyncio.ensure_future(_background(p, 50, log))
        await asyncio.sleep(0)  # the background has started
        await _urgent_batch(p, 20, log)
        return await bg, log, p.waits

    during, log, waits = asyncio.run(run())
    # One step at most: the one under way when the batch began. A plain turn of the loop
    # at each pause would interleave a background step with each of the batch's awaits.
    assert during <= 1
    assert log == ["urgent done", "background done"]
    assert waits == 1


def test_plain_turns_would_interleave() -> None:
    """The check above can fail: without waiting, background steps run inside the batch."""

    async def run() -> int:
        p, log = LoopPriority(quantum_s=3600.0), []  # never waits within the quantum
        bg = asyncio.ensure_future(_background(p, 50, log))
        await asyncio.sleep(0)
        await _urgent_batch(p, 20, log)
        return await bg

    assert asyncio.run(run()) >= 10


def test_no_urgent_work_means_no_wait() -> None:
    async def run() -> int:
        p = LoopPriority(quantum_s=0.0)
        for _ in range(100):
            await p.step_aside()
        return p.waits

    assert asyncio.run(run()) == 0


def test_waits_until_every_urgent_block_is_done() -> None:
    async def run() -> list[str]:
        p, log = LoopPriority(quantum_s=0.0), []
        first_in, release_first, release_second = (asyncio.Event() for _ in range(3))

        async def hold(release: asyncio.Event, name: str) -> None:
            async with p.urgent():
                first_in.set()
                await release.wait()
                log.append(name)

        a = asyncio.ensure_future(hold(release_first, "first"))
        b = asyncio.ensure_future(hold(release_second, "second"))
        await first_in.wait()
        bg = asyncio.ensure_future(_background(p, 3, log))
        await asyncio.sleep(0.01)
        release_first.set()
        await asyncio.sleep(0.01)
        assert not bg.done()  # the second block still holds it
        release_second.set()
        await asyncio.gather(a, b, bg)
        return log

    assert asyncio.run(run()) == ["first", "second", "background done"]


def test_a_failing_urgent_block_releases_the_background() -> None:
    async def run() -> int:
        p = LoopPriority(quantum_s=0.0)
        with pytest.raises(RuntimeError):
            async with p.urgent():
                raise RuntimeError("handler failed")
        await asyncio.wait_for(p.step_aside(), 1.0)
        return p.urgent_now

    assert asyncio.run(run()) == 0


def test_background_runs_a_quantum_after_each_wait() -> None:
    """Back-to-back urgent batches (a backlog) do not starve the background: after each
    wait it runs until its quantum is spent before it defers again."""

    async def run() -> tuple[int, int]:
        p, log = LoopPriority(quantum_s=3600.0), []
        p._resumed -= 7200  # the quantum is spent: the next pause under urgency waits
        bg = asyncio.ensure_future(_background(p, 30, log))
        await asyncio.sleep(0)
        for _ in range(3):
            await _urgent_batch(p, 5, log)
        await bg
        return p.waits, len(log)

    waits, done = asyncio.run(run())
    assert waits == 1  # it waited once, then ran on for its (hour-long) quantum
    assert done == 4


def test_background_waits_while_watched_input_drains() -> None:
    """Records waiting for the ingest go first: Faust moves them into the next batch one
    message per turn of the loop, so a background slice per turn would throttle them."""

    async def run(watch: bool) -> int:
        p = LoopPriority(quantum_s=0.0)
        q: asyncio.Queue[int] = asyncio.Queue()
        for i in range(200):
            q.put_nowait(i)
        if watch:
            p.watch("ingest", q.qsize)

        async def drain() -> None:
            while not q.empty():
                q.get_nowait()
                await asyncio.sleep(0)

        drainer = asyncio.ensure_future(drain())
        await asyncio.sleep(0)
        await p.step_aside()
        left = q.qsize()
        await drainer
        return left

    assert asyncio.run(run(watch=True)) == 0
    assert asyncio.run(run(watch=False)) > 150  # one turn drains one message


def test_a_queue_nobody_drains_holds_the_background_for_drain_s_at_most() -> None:
    """An agent that is not taking (waiting for the catalogue, or in a rebalance) leaves
    its queue full; background work goes on after ``drain_s``."""

    async def run() -> float:
        p = LoopPriority(quantum_s=0.0, drain_s=0.05)
        p.watch("ingest", lambda: 7)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(p.step_aside(), 2.0)
        return loop.time() - start

    assert 0.05 <= asyncio.run(run()) < 1.0


def test_an_agent_started_again_replaces_its_queue() -> None:
    async def run() -> int:
        p = LoopPriority(quantum_s=0.0, drain_s=30.0)
        p.watch("ingest", lambda: 5)  # the queue of an agent that is gone
        p.watch("ingest", lambda: 0)
        await asyncio.wait_for(p.step_aside(), 1.0)  # would wait 30 s for the old queue
        return p.waits

    assert asyncio.run(run()) == 0
