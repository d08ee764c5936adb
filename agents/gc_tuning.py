"""Garbage-collector settings for the long-running Faust processes.

CPython starts a young-generation collection every 700 net allocations of container
objects, and a full one whenever the objects that survived the younger generations
reach a quarter of the old one. A worker keeps every message, table write and list it
has in flight alive across an acknowledgement wait of a few milliseconds, so at
thousands of events per second those objects outlive the young generations, and the
full collections came back every few hundred milliseconds, each walking the whole
heap: 9 to 11 of a catch-up run's 20 to 24 CPU-seconds (measured with ``gc.callbacks``
in a worker over 40,000 synthetic events; docs/BENCHMARKS.md).

With the young generation collected every 50,000 net allocations and a full collection
considered only after 100 middle-generation ones, the same run spends about 0.4 s in
the collector and runs 1.6 to 1.8 times as fast; reference counting still frees
everything without cycles at once. ``gc.freeze`` moves what exists at start (modules,
classes, the app's wiring: about 150,000 objects) out of the collector's view for good.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Freeze the objects built so far and set the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
