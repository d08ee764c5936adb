"""A Faust agent that does nothing per message: the baseline the pipeline is compared with.

``python -m agents.noop BOOTSTRAP TOPIC N`` consumes N messages and prints the rate as JSON.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import faust
import orjson

from agents import gc_tuning


def main(bootstrap: str, topic_name: str, n: int) -> None:
    """Consume ``n`` messages of ``topic_name`` with one no-op agent; print the rate."""
    app = faust.App(
        f"noop-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_rebalance_timeout=10.0,
    )
    topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def noop(stream: faust.StreamT) -> None:
        async for _ in stream:
            if seen["n"] == 0:
                seen["first"] = time.monotonic()
            seen["n"] += 1
            if seen["n"] == n:
                elapsed = time.monotonic() - seen["first"]
                # sys.__stdout__: the Faust worker redirects print() into its logger
                out = sys.__stdout__
                assert out is not None
                out.write(
                    orjson.dumps({"messages": n, "seconds": elapsed, "rate": n / elapsed}).decode()
                    + "\n"
                )
                out.flush()
                os._exit(0)  # done; stopping Faust from inside its own agent would hang

    worker = faust.Worker(app, loglevel="error", quiet=True)
    gc_tuning.tune()  # as in the pipeline's worker, so the two rates compare like with like
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
