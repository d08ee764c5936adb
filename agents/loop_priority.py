"""Users' batches first: background work steps aside on the shared event loop.

Every agent of a worker shares one event loop. A batch of interactions is a run of short
computations between awaits (broker acknowledgements, a Redis pipeline); while it waits,
the loop runs whatever else is ready. When that is the item side, which folds a second
of deltas and rebuilds a few thousand item lists, each of the batch's steps waits behind
tens of milliseconds of item work, and a user's list is published half a second to a
second late: the freshness tail.

Input waiting for the ingest needs the loop too. While a batch is in hand, the batching
(agents/faust_take.py, as Faust's ``take_events``) stops filling the next one;
afterwards it moves the records waiting in the agent's queue into its buffer one message
per turn of the loop. Background work that
takes a slice of a few milliseconds per turn then lets a few hundred messages a second
through: fewer than arrive at a couple of thousand events a second, so records read from
the broker within 50 ms waited seconds in the queue, and the batch after the item side's
finished held thousands of them.

So the item side marks points where it can pause (:meth:`LoopPriority.step_aside`), and
the ingest runs its batches as urgent work (:meth:`LoopPriority.urgent`) and shows its
queue (:meth:`LoopPriority.watch`). At a pause, background work that has run for
``quantum_s`` since it last resumed waits until no urgent batch is in hand and the
watched queues are empty (at most ``drain_s`` for the queues: an agent that is not
taking, at start or in a rebalance, must not hold the background); otherwise it only
yields a turn of the loop. The quantum keeps the background from starving when the
ingest never idles (a backlog or a replay): it runs at least a quantum between waits,
and the loop's idle time is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

QUANTUM_S = 0.02  # background work run after a wait before it defers to urgent work again
DRAIN_S = 0.1  # longest wait at one pause for watched queues to empty
POLL_S = 0.001  # how often a waiting pause looks at the watched queues


class LoopPriority:
    """Counts urgent work in hand; background work waits for it at its pauses."""

    def __init__(self, quantum_s: float = QUANTUM_S, drain_s: float = DRAIN_S) -> None:
        self.quantum_s = quantum_s
        self.drain_s = drain_s
        self.urgent_now = 0
        self._queues: dict[str, Callable[[], int]] = {}
        self.waits = 0  # pauses that waited (for tests and profiles)
        self._clear = asyncio.Event()
        self._clear.set()
        self._resumed = time.monotonic()

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Hold background work at its pauses while the block runs."""
        self.urgent_now += 1
        self._clear.clear()
        try:
            yield
        finally:
            self.urgent_now -= 1
            if not self.urgent_now:
                self._clear.set()

    def watch(self, name: str, queued: Callable[[], int]) -> None:
        """Hold background work at its pauses while ``queued()`` (input waiting) > 0.

        One queue per ``name``: an agent started again replaces its old queue.
        """
        self._queues[name] = queued

    def _queued(self) -> bool:
        return any(q() for q in self._queues.values())

    async def step_aside(self) -> None:
        """A pause of background work: a turn of the loop, or a wait for urgent work."""
        await asyncio.sleep(0)
        start = time.monotonic()
        if start - self._resumed < self.quantum_s or not (self.urgent_now or self._queued()):
            return
        self.waits += 1
        drain_from = start
        while True:
            if self.urgent_now:
                await self._clear.wait()
                drain_from = time.monotonic()  # the batch held the queue: drain it now
            elif self._queued() and time.monotonic() - drain_from < self.drain_s:
                await asyncio.sleep(POLL_S)
            else:
                break
        self._resumed = time.monotonic()
