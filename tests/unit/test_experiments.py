"""A/B assignment: deterministic, proportional to the split, reshuffled by a new salt."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from streams.experiments import PROFILES, assign, experiment, from_settings
from streams.settings import SettingsError, load_settings

USERS = [f"user-{i}" for i in range(20_000)]


def test_assignment_is_deterministic() -> None:
    split = (("A", 50), ("B", 50))
    first = [assign(u, "salt", split) for u in USERS[:500]]
    assert first == [assign(u, "salt", split) for u in USERS[:500]]


@pytest.mark.parametrize("weights", [(50, 50), (90, 10), (1, 2, 1)])
def test_split_proportions_within_tolerance(weights: tuple[int, ...]) -> None:
    names = ["A", "B", "C"][: len(weights)]
    split = tuple(zip(names, weights, strict=True))
    counts = Counter(assign(u, "exp-1", split) for u in USERS)
    total = sum(weights)
    for name, w in split:
        p = w / total
        # 5 binomial standard deviations: fails only for a biased assignment
        sd = math.sqrt(len(USERS) * p * (1 - p))
        assert abs(counts[name] - len(USERS) * p) < 5 * sd, (name, counts)


def test_new_salt_reshuffles_users() -> None:
    split = (("A", 50), ("B", 50))
    a = [assign(u, "salt-1", split) for u in USERS[:4000]]
    b = [assign(u, "salt-2", split) for u in USERS[:4000]]
    changed = sum(x != y for x, y in zip(a, b, strict=True)) / len(a)
    # Independent coin flips disagree half of the time.
    assert 0.45 < changed < 0.55


def test_arm_carries_the_variant_profile() -> None:
    exp = experiment("s", (("A", 1), ("B", 1)), "A")
    arms = {exp.arm(u).variant: exp.arm(u).weights for u in USERS[:100]}
    assert arms == {"A": PROFILES["A"], "B": PROFILES["B"]}
    assert exp.variants == ("A", "B")


def test_no_split_puts_everyone_in_the_configured_variant() -> None:
    exp = from_settings(load_settings(env={"KAPPAREC_VARIANT": "X"}))
    assert {exp.arm(u).variant for u in USERS[:100]} == {"X"}
    assert exp.variants == ("X",)


# A:1,B:1,C:30000: users are dealt in 10,000 buckets, and B would have got none.
@pytest.mark.parametrize(
    "raw", ["A:50", "A:50,B", "A:50,B:-1", "A:0,B:10", "A:1,A:1", "A:1,Q:1", "A:1,B:1,C:30000"]
)
def test_bad_split_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="KAPPAREC_AB_SPLIT"):
        load_settings(env={"KAPPAREC_AB_SPLIT": raw})


def test_split_is_normalised_and_round_trips() -> None:
    s = load_settings(env={"KAPPAREC_AB_SPLIT": " A:70 , B:30"})
    assert s.ab_split == "A:70,B:30"
    assert s.split == (("A", 70), ("B", 30))
