"""Batches handed out as soon as the agent is free: what queued while it was busy.

Faust's ``Stream.take_events(max_, within)`` yields a batch when ``max_`` events are
buffered or ``within`` seconds after it last yielded, whichever comes first. Between
batches it waits the whole ``within`` even when events queued while the last batch was
handled, and an idle agent wakes every ``within`` to find nothing. For a user's event
that wait is pure latency: at 3,300 events/s on one worker its ingest batches took
0.12 s and the next began 0.05 s after each, every time, so a probe waited for a third
of a cycle more than it had to.

:func:`take_batches` yields as soon as the events that queued are in its buffer (the
agent's channel queue is empty), at most ``max_`` of them, and at most ``within``
after it started gathering them if input keeps queueing. With no input it waits on an
event, not a timer. Under load the batches grow by themselves: the longer a batch
takes, the more queues for the next one (the coalescing a window gave, without the
wait).

The mechanics are ``take_events``' own: a processor of the stream fills the buffer
while the stream is consumed passively; the stream's acknowledgements are turned off
and each event is acknowledged after the batch it came in was handled (the caller
asked for the next one); the buffer does not grow while a batch is handed out, so what
arrives meanwhile waits in the channel queue, where the loop priority sees it
(agents/loop_priority.py).

The item side keeps a window (``window=True``: a batch every ``within``, as
``take_events`` gives): it is what writes a busy item once per ``KAPPAREC_ITEM_FLUSH_S``,
not a wait to remove. It goes through this function too, because Faust registers the
generators of ``take_events`` with their stream, and a stream that stops closes them:
the batch in hand was then acknowledged while its handler still ran (shielded from the
stop, see ``_finish`` in agents/app.py), and a crash right after lost it. These
generators are not registered; their cleanup runs when the agent lets go of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mode.utils.aiter import aiter
from mode.utils.futures import notify


async def take_batches(
    stream: Any, max_: int, within: float, window: bool = False
) -> AsyncIterator[list[Any]]:
    """Lists of ``stream``'s events: what queued, at once; at most ``max_`` events; at
    most ``within`` seconds of gathering while input keeps queueing. With ``window``,
    as ``take_events``: ``within`` after the last batch, or ``max_`` events."""
    events: list[Any] = []
    ready = asyncio.Event()  # the buffer holds what queued, or max_ events
    gathering = asyncio.Event()  # the buffer holds at least one event
    full = asyncio.Event()  # the buffer holds max_ events
    consumed = asyncio.Event()
    consuming: asyncio.Future[Any] | None = None
    queue = stream.channel.queue
    acks_were = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:  # a batch is being handed out: wait for it
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_batches found current_event is None")
            events.append(event)
            gathering.set()
            if len(events) >= max_:
                ready.set()
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # never more than max_ in one batch
            elif not queue.qsize():
                ready.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # acknowledged below, once the batch was handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if window:
                await stream.wait_for_stopped(full, timeout=within)
            else:
                if not events:  # idle: no timer
                    await stream.wait_for_stopped(gathering)
                if events and not ready.is_set():  # the rest may never come (queue cleared)
                    await stream.wait_for_stopped(ready, timeout=within)
            if not events:
                continue
            consuming = stream.loop.create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                notify(consuming)
                ready.clear()
                gathering.clear()
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = acks_were
        stream._processors.remove(add_to_buffer)
