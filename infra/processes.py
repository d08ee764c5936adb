"""Child processes of the embedded stack: spawn them detached, wait until ready, stop safely."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import KapparecError

HOST = "127.0.0.1"


class _Daemon(subprocess.Popen[bytes]):
    """A child meant to outlive this process: no "still running" warning when collected."""

    def __del__(self) -> None:
        # Popen.__del__ warns and queues the child for reaping; a daemon is reaped by init
        # once the CLI that started it exits, or by terminate() in a long-lived caller.
        pass


# Children this process spawned, so a long-lived caller (the test session) reaps them on
# stop instead of collecting zombies, and learns their exit code when they die early.
_children: dict[int, _Daemon] = {}


class StackError(KapparecError):
    """The embedded stack could not start or stop; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Service:
    """One process of the embedded stack, as recorded in the state file."""

    name: str
    pid: int
    binary: str
    address: str
    log: Path


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, option: str) -> None:
    """Raise :class:`StackError` naming ``port`` and ``option`` when something listens there."""
    with socket.socket() as sock:
        # Like the servers themselves: a port in TIME_WAIT is usable, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {HOST} is busy ({exc.strerror}); choose another with "
                f"{option} or stop what listens there"
            ) from None


def spawn(argv: Sequence[str], log: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session (so it outlives the caller), output to ``log``."""
    try:
        with open(log, "wb") as out:
            proc = _Daemon(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as exc:
        raise StackError(f"cannot run {argv[0]}: {exc}") from None
    _children[proc.pid] = proc
    return proc.pid


def log_tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``log``, for error messages."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return f"(no log at {log})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({log} is empty)"


def is_running(pid: int) -> bool:
    """True when ``pid`` is a live process (zombies count as dead)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name in parentheses may itself contain spaces or parentheses.
    return stat.rpartition(")")[2].split()[0]


def runs_binary(pid: int, binary: str) -> bool:
    """True when ``pid`` still runs ``binary``, so a recycled pid is never killed."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    if exe:
        return exe.removesuffix(" (deleted)") == os.path.realpath(binary)
    # No /proc (macOS) or no permission: fall back to the command line that ps shows.
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return False
    return os.path.basename(binary) in out


def exit_code(pid: int) -> int | None:
    """Exit status of a child this process spawned, if it has exited and is known."""
    child = _children.get(pid)
    return None if child is None else child.poll()


def terminate(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL (the broker may ignore SIGTERM)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            raise StackError(f"not allowed to stop pid {pid}; stop it yourself") from None
        if _wait_gone(pid, wait_s):
            break
    else:
        raise StackError(f"pid {pid} survived SIGKILL; stop it yourself")
    child = _children.pop(pid, None)
    if child is not None:
        child.wait()


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def wait_ready(service: Service, probe: Callable[[], None], timeout: float) -> None:
    """Poll ``probe`` until it passes; raise :class:`StackError` with the log tail if it never does.

    ``probe`` raises a :class:`KapparecError` while the service is not answering yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not is_running(service.pid):
            raise StackError(
                f"{service.name} ({service.binary}) exited early with code "
                f"{exit_code(service.pid)}; last lines of {service.log}:\n{log_tail(service.log)}"
            )
        try:
            probe()
        except KapparecError as exc:
            problem = str(exc)
        else:
            # Another server may hold the port and answer the probe while ours dies on bind.
            time.sleep(0.05)
            if is_running(service.pid):
                return
            continue
        if time.monotonic() >= deadline:
            raise StackError(
                f"{service.name} did not answer at {service.address} within {timeout:.0f} s "
                f"({problem}); last lines of {service.log}:\n{log_tail(service.log)}"
            )
        time.sleep(0.1)
