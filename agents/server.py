"""Run the HTTP API: several processes share one port (SO_REUSEPORT), each on uvloop.

One Python process tops out at one core, so reads scale with processes; the kernel
spreads new connections over their sockets. The parent only supervises: if a server
process dies the others are stopped and the command fails, so a supervisor restarts
the whole set.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from multiprocessing.connection import wait
from types import FrameType

from agents.telemetry import MULTIPROC_ENV
from streams.settings import Settings


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(4096)
    return sock


def uvicorn_config(settings: Settings) -> object:
    """uvicorn settings: httptools parser, uvloop, no access log (a line per read costs more)."""
    import uvicorn

    from agents.http_api import HttpApi

    return uvicorn.Config(
        HttpApi(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        backlog=4096,
    )


def serve_one(settings: Settings) -> None:
    """Serve in this process until SIGINT/SIGTERM."""
    import uvicorn

    server = uvicorn.Server(uvicorn_config(settings))  # type: ignore[arg-type]
    server.run(sockets=[listening_socket(settings.http_host, settings.http_port)])


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
