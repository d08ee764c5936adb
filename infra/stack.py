"""The embedded dev stack: a memory-only Tansu broker and a Redis, recorded in ``stack.json``.

``up`` starts what is missing and records addresses and pids in ``{state_dir}/stack.json``;
``down`` stops exactly the processes recorded there. Other commands read the recorded
addresses as a settings fallback::

    load_settings(fallback=read_state(state_dir))
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agents.admin import ServiceUnavailable, check_kafka, check_redis
from infra.broker import start_broker
from infra.processes import Service, StackError, is_running, runs_binary, terminate
from infra.redis_server import start_redis
from streams.settings import Settings, mask_url

__all__ = ["STATE_FILE", "StackError", "broker_label", "down", "read_state", "status", "up"]

STATE_FILE = "stack.json"
READY_TIMEOUT_S = 20.0
_PROBE_TIMEOUT_S = 2.0
# Stop order: the consumers' store first, the log last.
_SERVICES = ("redis", "broker")

log = logging.getLogger(__name__)


def up(
    settings: Settings,
    kafka_port: int | None = None,
    redis_port: int | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> dict[str, Any]:
    """Start the broker and Redis unless the recorded stack is already up; return its state.

    Redis: ``settings.redis_url`` is reused when it answers PING and ``redis_port`` is not
    given; otherwise a ``redis-server`` is started. Raises :class:`StackError`.
    """
    state_dir = _state_dir(settings)
    path = state_dir / STATE_FILE
    with _locked(state_dir):
        state = _load(path)
        if state is not None:
            if _answering(state):
                _check_ports(state, kafka_port, redis_port)
                return state
            log.info("recorded stack in %s is stale; starting a fresh one", path)
            _stop_recorded(state)
            path.unlink(missing_ok=True)
        state = _start(settings, state_dir, kafka_port, redis_port, timeout)
        try:
            _write_atomic(path, state)
        except BaseException:
            _stop_recorded(state)  # unrecorded, `down` could not stop them
            raise
        return state


def _start(
    settings: Settings,
    state_dir: Path,
    kafka_port: int | None,
    redis_port: int | None,
    timeout: float,
) -> dict[str, Any]:
    started: list[Service] = []
    try:
        broker = start_broker(state_dir, kafka_port, timeout)
        started.append(broker)
        redis = None
        if redis_port is not None or not _redis_answers(settings.redis_url):
            redis = start_redis(state_dir, redis_port, timeout)
            started.append(redis)
    except BaseException:
        # Leave nothing half-started behind: the caller gets the error, not orphans.
        for service in reversed(started):
            terminate(service.pid)
        raise
    return {
        "kafka_bootstrap": broker.address,
        "redis_url": redis.address if redis else settings.redis_url,
        "pids": {"broker": broker.pid, "redis": redis.pid if redis else None},
        "binaries": {"broker": broker.binary, "redis": redis.binary if redis else None},
        "logs": {"broker": str(broker.log), "redis": str(redis.log) if redis else None},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def down(settings: Settings) -> list[str]:
    """Stop the processes ``up`` started (never a reused Redis); return the names stopped."""
    state_dir = _state_dir(settings, create=False)
    path = state_dir / STATE_FILE
    if not path.exists():
        return []
    with _locked(state_dir):
        state = _load(path)
        stopped = _stop_recorded(state) if state is not None else []
        path.unlink(missing_ok=True)
    return stopped


def broker_label(state: dict[str, Any]) -> str:
    """How a report names the broker of the stack ``state``."""
    if (state.get("pids") or {}).get("broker"):
        return "embedded (Tansu, memory)"
    return str(state.get("kafka_bootstrap", "external"))


def read_state(state_dir: Path | str) -> dict[str, Any] | None:
    """The recorded stack (addresses, pids), or None when absent, unreadable or not running."""
    state = _load(Path(state_dir) / STATE_FILE)
    if state is None or not _alive(state):
        return None
    return state


def status(settings: Settings) -> dict[str, Any]:
    """What runs and answers, per service; passwords in URLs are masked."""
    path = _state_dir(settings, create=False) / STATE_FILE
    state = _load(path)
    if state is None:
        return {"running": False, "state_file": str(path), "services": {}}
    services = {
        "broker": _service_status(state, "broker", state["kafka_bootstrap"], check_kafka),
        "redis": _service_status(state, "redis", state["redis_url"], check_redis),
    }
    return {
        "running": all(s["answering"] for s in services.values()),
        "state_file": str(path),
        "started_at": state.get("started_at"),
        "kafka_bootstrap": state["kafka_bootstrap"],
        "redis_url": mask_url(state["redis_url"]),
        "services": services,
    }


def _service_status(state: dict[str, Any], name: str, address: str, probe: Any) -> dict[str, Any]:
    pid = state["pids"].get(name)
    try:
        probe(address, timeout=_PROBE_TIMEOUT_S)
        answering = True
    except ServiceUnavailable:
        answering = False
    return {
        "address": mask_url(address),
        "pid": pid,
        "alive": _owned_and_running(state, name) if pid is not None else None,
        "answering": answering,
        "reused": pid is None,
        "log": state.get("logs", {}).get(name),
    }


def _state_dir(settings: Settings, create: bool = True) -> Path:
    state_dir = Path(settings.state_dir).resolve()
    if create:
        state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    # Two concurrent `up`s on one state dir would otherwise start two brokers.
    with open(state_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    required = {"kafka_bootstrap", "redis_url", "pids", "binaries"}
    if not isinstance(state, dict) or not required <= state.keys():
        log.warning("ignoring %s: not a stack state file", path)
        return None
    return state


def _write_atomic(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600: a reused Redis URL may carry a password.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _owned_and_running(state: dict[str, Any], name: str) -> bool:
    pid = state["pids"].get(name)
    binary = state["binaries"].get(name)
    return bool(pid and binary and is_running(pid) and runs_binary(pid, binary))


def _alive(state: dict[str, Any]) -> bool:
    return all(
        _owned_and_running(state, name) for name in _SERVICES if state["pids"].get(name) is not None
    )


def _answering(state: dict[str, Any]) -> bool:
    if not _alive(state):
        return False
    try:
        check_kafka(state["kafka_bootstrap"], timeout=_PROBE_TIMEOUT_S)
        check_redis(state["redis_url"], timeout=_PROBE_TIMEOUT_S)
    except ServiceUnavailable:
        return False
    return True


def _redis_answers(url: str) -> bool:
    if not url:
        return False
    try:
        check_redis(url, timeout=_PROBE_TIMEOUT_S)
    except ServiceUnavailable:
        return False
    return True


def _check_ports(state: dict[str, Any], kafka_port: int | None, redis_port: int | None) -> None:
    running = {
        "--kafka-port": (kafka_port, state["kafka_bootstrap"]),
        "--redis-port": (redis_port, state["redis_url"]),
    }
    for option, (wanted, address) in running.items():
        if wanted is not None and wanted != _port(address):
            raise StackError(
                f"the stack is already up with {mask_url(address)}, not port {wanted} "
                f"({option}); run `kapparec down` first to move it"
            )


def _port(address: str) -> int | None:
    if "://" in address:
        return urlsplit(address).port
    return int(address.rpartition(":")[2])


def _stop_recorded(state: dict[str, Any]) -> list[str]:
    stopped = []
    for name in _SERVICES:
        pid = state["pids"].get(name)
        if pid is None:
            continue  # reused, not ours to stop
        if _owned_and_running(state, name):
            terminate(pid)
            stopped.append(name)
        elif is_running(pid):
            log.warning("pid %s no longer runs %s; leaving it alone", pid, name)
    return stopped
