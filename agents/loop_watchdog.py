"""Report event-loop stalls with the stack of the code that holds the loop.

Every agent of a worker shares one event loop, so a handler that computes for half a
second without awaiting delays every other agent by as much (a user's list waits behind
an item-side batch). A coroutine on the loop stamps a heartbeat; a daemon thread checks
it, and when the loop has been late for longer than the threshold it logs, once per
stall, the loop thread's stack at that moment: the line that is holding the loop.
How late each heartbeat ran is also observed (``kapparec_loop_lag_seconds``): stalls
below the threshold are what a loaded worker's freshness tail is made of.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

STACK_DEPTH = 12  # innermost frames logged


class LoopWatchdog:
    """Heartbeat on the loop, watcher on a thread; ``threshold_s`` > 0."""

    def __init__(
        self, threshold_s: float, observe: Callable[[float], None] = lambda lag_s: None
    ) -> None:
        self.threshold_s = threshold_s
        self.tick_s = threshold_s / 4
        self.observe = observe  # receives each heartbeat's lateness in seconds
        self.beat = time.monotonic()
        self.stalls = 0
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()

    async def run(self) -> None:
        """Stamp the heartbeat until cancelled; starts the watcher thread."""
        self._loop_thread = threading.get_ident()
        watcher = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        watcher.start()
        try:
            self.beat = time.monotonic()
            while True:
                await asyncio.sleep(self.tick_s)
                now = time.monotonic()
                self.observe(max(0.0, now - self.beat - self.tick_s))
                self.beat = now
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported = 0.0  # heartbeat of the stall already reported
        while not self._stop.wait(self.tick_s):
            beat = self.beat
            late = time.monotonic() - beat - self.tick_s
            if late > self.threshold_s and beat != reported:
                reported = beat
                self.stalls += 1
                log.warning(
                    "event loop stalled for %.0f ms so far; it is at:\n%s",
                    late * 1000,
                    self.stack(),
                )

    def stack(self) -> str:
        """The loop thread's current stack, innermost frame last."""
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "(no frame)"
        return "".join(traceback.format_list(traceback.extract_stack(frame)[-STACK_DEPTH:]))
