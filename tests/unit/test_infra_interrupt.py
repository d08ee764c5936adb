"""Ctrl-C during `kapparec up` leaves no child running: whatever was started is stopped.

The broker and Redis binaries are stood in for by ``sleep``; the interrupt is raised where
`up` waits (the readiness probe) or records the stack (the state file).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import broker, redis_server, stack
from infra.processes import is_running, terminate
from streams.settings import load_settings

SLEEP = shutil.which("sleep") or "/bin/sleep"


def _interrupt(*_args: Any, **_kwargs: Any) -> None:
    raise KeyboardInterrupt


def _answer(*_args: Any, **_kwargs: Any) -> None:
    return None


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Stand-in binaries for the broker and Redis; the pids they got, stopped afterwards."""
    pids: list[int] = []
    for module, binary, argv in (
        (broker, "broker_bin", "broker_argv"),
        (redis_server, "redis_server_bin", "redis_argv"),
    ):
        real_spawn = module.spawn

        def spawn(argv: list[str], log: Path, cwd: Path, real: Any = real_spawn) -> int:
            pid: int = real(argv, log, cwd)
            pids.append(pid)
            return pid

        monkeypatch.setattr(module, "spawn", spawn)
        monkeypatch.setattr(module, binary, lambda: SLEEP)
        monkeypatch.setattr(module, argv, lambda binary, *_: [binary, "60"])
    monkeypatch.setattr(broker, "check_kafka", _answer)
    monkeypatch.setattr(redis_server, "check_redis", _answer)
    yield pids
    for pid in pids:
        if is_running(pid):
            terminate(pid)


def test_interrupted_broker_start_stops_the_broker(spawned: list[int], tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(broker, "check_kafka", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            broker.start_broker(tmp_path, None, timeout=5.0)
    assert len(spawned) == 1 and not is_running(spawned[0])


def test_interrupted_redis_start_stops_the_redis(spawned: list[int], tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(redis_server, "check_redis", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            redis_server.start_redis(tmp_path, None, timeout=5.0)
    assert len(spawned) == 1 and not is_running(spawned[0])


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (broker, "check_kafka"),
        (redis_server, "check_redis"),
        (stack, "_write_atomic"),
    ],
    ids=["broker-probe", "redis-probe", "state-file"],
)
def test_interrupted_up_leaves_nothing_running(
    spawned: list[int], tmp_path: Path, module: Any, name: str
) -> None:
    settings = load_settings(env={}, state_dir=tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, name, _interrupt)
        with pytest.raises(KeyboardInterrupt):
            stack.up(settings, timeout=5.0)
    assert spawned and not any(is_running(pid) for pid in spawned)
    assert stack.down(settings) == []  # nothing recorded, and nothing left to record
