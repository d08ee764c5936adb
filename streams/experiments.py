"""A/B assignment: a deterministic user -> variant map and each variant's ranking configuration.

A user's bucket is a salted SHA-256 of the user id, so every worker, frontend and replay
puts the same user in the same variant without shared state; a new salt reshuffles
users for the next experiment. Each variant ranks with its own :class:`BlendWeights`.

>>> arms = (("A", 50), ("B", 50))
>>> assign("u1", "s", arms) == assign("u1", "s", arms)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.blending import DEFAULT_WEIGHTS, BlendWeights

if TYPE_CHECKING:
    from streams.settings import Settings

BUCKETS = 10_000

# The ranking configurations a variant may name. A is the control (the defaults, which
# lean on co-views: bought 0.1, viewed 0.6); B gives trending (overall and in the user's
# categories) far more say; C gives co-purchases more say than A does (0.6 to 1.0).
PROFILES: Mapping[str, BlendWeights] = {
    "A": DEFAULT_WEIGHTS,
    "B": BlendWeights(bought=1.0, viewed=0.6, category=0.6, trending=0.5, recency=0.8),
    "C": BlendWeights(bought=0.6, viewed=1.0, category=0.15, trending=0.05, recency=0.8),
}

Split = Sequence[tuple[str, int]]


def bucket(user_id: str, salt: str) -> int:
    """The user's bucket in ``[0, BUCKETS)``: uniform, stable for a given salt."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(user_id: str, salt: str, split: Split) -> str:
    """The variant of ``user_id``: buckets are dealt to variants in proportion to weight."""
    total = sum(w for _, w in split)
    point = bucket(user_id, salt) * total / BUCKETS
    upto = 0
    for name, weight in split:
        upto += weight
        if point < upto:
            return name
    return split[-1][0]


@dataclass(frozen=True, slots=True)
class Arm:
    """What a user gets: the variant name stamped on lists and the weights that rank them."""

    variant: str
    weights: BlendWeights


@dataclass(frozen=True, slots=True)
class Experiment:
    """Variant assignment for one running experiment; no split means one arm for everyone."""

    salt: str
    split: tuple[tuple[str, int], ...]
    default: Arm

    def arm(self, user_id: str) -> Arm:
        """The arm ``user_id`` is in."""
        if not self.split:
            return self.default
        variant = assign(user_id, self.salt, self.split)
        return Arm(variant, PROFILES[variant])

    @property
    def variants(self) -> tuple[str, ...]:
        """Variant names in split order (the first is the control)."""
        return tuple(n for n, _ in self.split) or (self.default.variant,)


def experiment(
    salt: str, split: Split, variant: str, weights: BlendWeights = DEFAULT_WEIGHTS
) -> Experiment:
    """An experiment; with an empty ``split`` every user is in ``variant`` ranked by ``weights``."""
    unknown = [n for n, _ in split if n not in PROFILES]
    if unknown:
        raise KeyError(f"no ranking profile for variant(s) {', '.join(unknown)}")
    return Experiment(salt, tuple(split), Arm(variant, weights))


def from_settings(settings: Settings) -> Experiment:
    """The experiment set by ``KAPPAREC_AB_SALT``, ``_AB_SPLIT`` and ``_VARIANT``."""
    return experiment(settings.ab_salt, settings.split, settings.variant)
