"""Run the HTTP API: several processes share one port (SO_REUSEPORT), each on uvloop.

One Python process tops out at one core, so reads scale with processes; the kernel
spreads new connections over them. The parent only supervises: if a server process dies
the others are stopped and the command fails, so a supervisor restarts the whole set.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
from multiprocessing.connection import wait
from types import FrameType

from agents.telemetry import MULTIPROC_ENV
from streams.settings import Settings


def serve_one(settings: Settings) -> None:
    """Serve in this process until SIGINT/SIGTERM."""
    import uvloop
    from aiohttp import web

    from agents.http_api import build_http_app

    web.run_app(
        build_http_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        reuse_port=True,
        access_log=None,  # a log line per read would cost more than the read
        print=None,
        loop=uvloop.new_event_loop(),
    )


def serve(settings: Settings) -> int:
    """Start ``settings.http_processes`` server processes; return when they stop."""
    n = settings.http_processes
    if n == 1:
        serve_one(settings)
        return 0
    # Request counters of all processes are summed on any scrape (prometheus_client's
    # multiprocess mode); children read this variable when they import prometheus_client.
    with tempfile.TemporaryDirectory(prefix="kapparec-metrics-") as tmp:
        os.environ[MULTIPROC_ENV] = tmp
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=serve_one, args=(settings,), name=f"http-{i}") for i in range(n)
        ]
        for p in procs:
            p.start()

        def stop(signum: int, _frame: FrameType | None) -> None:
            for p in procs:
                if p.is_alive():
                    p.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        wait([p.sentinel for p in procs])
        stop(signal.SIGTERM, None)
        for p in procs:
            p.join(10)
        failed = [p for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
        for p in failed:
            print(f"error: {p.name} exited with status {p.exitcode}", file=sys.stderr)
        return 1 if failed else 0
