"""Worker processes for the demo, the benchmark and the tests: start, stop, kill."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from infra.processes import log_tail, terminate
from streams.settings import Settings, to_env


class WorkerProcess:
    """One ``kapparec worker`` child process with its log file."""

    def __init__(self, settings: Settings, log: Path, worker_id: str = "w1") -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPAREC_")}
        env.update(to_env(settings))
        env["KAPPAREC_WORKER_ID"] = worker_id
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agents.cli", "worker"],
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def signal_stop(self) -> None:
        """SIGTERM without waiting: the start of a graceful stop (see :meth:`stop`)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s`` (a worker without a broker may hang)."""
        if self.alive:
            terminate(self.proc.pid, grace_s=grace_s)
        return self.proc.wait(timeout=5)

    def kill(self) -> int:
        """SIGKILL at once: the crash case."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        """The end of the worker's log, for error messages."""
        return log_tail(self.log, lines)
