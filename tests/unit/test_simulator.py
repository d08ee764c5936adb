"""The A/B simulator's runs: new ids every run, the same behaviour for the same seed.

Reading lists and producing are replaced here: what is tested is which events a run
makes (the integration test of experiments runs it against the broker and Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import agents.simulator as sim
from agents.producer import ProduceSummary
from schemas.errors import KapparecError
from schemas.events import Impression
from streams.settings import load_settings
from streams.simulation import Preference

SETTINGS = load_settings(
    env={"KAPPAREC_KAFKA_BOOTSTRAP": "h:1", "KAPPAREC_REDIS_URL": "redis://h:1/0"}
)
USERS = [f"u{i}" for i in range(40)]


class _Redis:
    async def aclose(self) -> None:
        pass


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """Each run's events, as they would have been produced."""
    runs: list[list[Any]] = []

    async def show(reader: Any, settings: Any, users: Sequence[str], k: int) -> list[Any]:
        return [(u, [[f"i{n}", 1.0, "t"] for n in range(k)], "A") for u in users]

    def produce(settings: Any, events: Sequence[Any], progress: bool = True) -> ProduceSummary:
        runs[-1].extend(events)
        return ProduceSummary({"x": len(events)}, {"x": len(events)}, {}, {}, 0.1)

    monkeypatch.setattr(sim, "connect", lambda *a, **k: _Redis())
    monkeypatch.setattr(sim, "_show", show)
    monkeypatch.setattr(sim, "produce", produce)
    return runs


def test_two_runs_with_the_same_seed_behave_alike_under_new_ids(sent: list[list[Any]]) -> None:
    summaries = []
    for start in (1_700_000_000_000, 1_700_000_060_000):
        sent.append([])
        summaries.append(sim.simulate(SETTINGS, USERS, 300, Preference({"A": 0.3}),
                                      start_ms=start, progress=False))  # fmt: skip
    first, second = sent
    # Workers drop an event id or a request id they have seen: a second run must not
    # repeat the first's.
    assert not {e.event_id for e in first} & {e.event_id for e in second}
    rids = [{e.request_id for e in run if isinstance(e, Impression)} for run in sent]
    assert len(rids[0]) == len(rids[1]) == 300
    assert not rids[0] & rids[1]
    assert summaries[0].clicks == summaries[1].clicks  # the seed fixes what users do
    assert [type(e) for e in first] == [type(e) for e in second]


def test_a_clock_that_would_run_past_the_future_limit_is_refused(sent: list[list[Any]]) -> None:
    sent.append([])
    too_far = SETTINGS.max_future_s * 1000 // 100 + 1  # ms per request for 100 requests
    with pytest.raises(KapparecError, match="KAPPAREC_MAX_FUTURE_S"):
        sim.simulate(SETTINGS, USERS, 100, Preference({}), step_ms=too_far, progress=False)
    assert sent == [[]]
