"""A bench's clean-up in its ``finally`` reports a failure instead of raising it."""

from __future__ import annotations

import pytest

from agents.bench import discard_after
from streams.settings import load_settings


def test_a_failed_clean_up_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(
        env={},
        redis_url="redis://127.0.0.1:1/0",  # nothing listens on port 1
        kafka_bootstrap="127.0.0.1:1",
        namespace="benchdead",
    )
    discard_after(s)  # raises nothing
    err = capsys.readouterr().err
    assert "could not delete run benchdead's keys and topics" in err
    assert "127.0.0.1:1" in err  # and why: the address it could not reach
