"""Stopping a replay's worker pool: every worker is asked, even when one fails to stop."""

from pathlib import Path
from typing import Any, cast

from agents.versions import stop_all


class _Worker:
    def __init__(self, name: str, calls: list[str], fails: bool = False) -> None:
        self.log = Path(f"{name}.log")
        self.name, self.calls, self.fails = name, calls, fails

    def signal_stop(self) -> None:
        self.calls.append(f"term {self.name}")

    def stop(self, grace_s: float = 15.0) -> int:
        self.calls.append(f"wait {self.name}")
        if self.fails:
            raise TimeoutError("still running")
        return 0


def test_all_workers_are_signalled_before_any_is_waited_for() -> None:
    calls: list[str] = []
    assert stop_all(cast(Any, [_Worker("a", calls), _Worker("b", calls)])) == []
    assert calls == ["term a", "term b", "wait a", "wait b"]


def test_a_worker_that_does_not_stop_is_reported_after_the_others_are_stopped() -> None:
    calls: list[str] = []
    pool = [_Worker("a", calls, fails=True), _Worker("b", calls)]
    assert stop_all(cast(Any, pool)) == ["a.log: still running"]
    assert calls[-1] == "wait b"
