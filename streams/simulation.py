"""Synthetic shoppers with a known preference, to exercise A/B metrics and drift detection.

A shopper is shown a list (rows ``[item_id, score, reason]``) and clicks at most one
slot: the list gets a click with the variant's probability, the slot is drawn with a
position bias (1 / rank) times the pull of the slot's candidate source. A click may
lead to a cart, a cart to a purchase. Every event carries the list's ``request_id`` and
``variant``; event times advance on a simulated clock, so a run of minutes covers the
attribution window many times.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, Impression, Interaction
from streams.attribution import source_of

Event = Impression | Interaction


def parse_rates(raw: str) -> dict[str, float]:
    """``"A=0.05,B=0.1"`` as ``{"A": 0.05, "B": 0.1}``; values must be in [0, 1]."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise ValueError(f"{part!r}: expected NAME=PROBABILITY")
        p = float(value)
        if not 0 <= p <= 1:
            raise ValueError(f"{part!r}: probability must be between 0 and 1")
        out[name.strip()] = p
    return out


@dataclass(frozen=True, slots=True)
class Preference:
    """The true behaviour: click probability of a list per variant, pull per source."""

    ctr: Mapping[str, float]
    default_ctr: float = 0.05
    source_pull: Mapping[str, float] = field(default_factory=dict)
    cart: float = 0.3
    purchase: float = 0.5

    def list_ctr(self, variant: str) -> float:
        """Probability that a list of ``variant`` gets a click."""
        return self.ctr.get(variant, self.default_ctr)


@dataclass(slots=True)
class Shopper:
    """Turns one shown list into an impression and the interactions that follow it."""

    rng: random.Random
    surface: str = "home"

    def respond(
        self,
        user_id: str,
        rows: Sequence[Sequence[Any]],
        variant: str,
        request_id: str,
        ts: int,
        pref: Preference,
    ) -> list[Event]:
        """The impression of ``rows`` at ``ts`` and any click, cart and purchase after it."""
        items = tuple(str(r[0]) for r in rows)
        reasons = tuple(str(r[2]) if len(r) > 2 and r[2] else "unknown" for r in rows)
        out: list[Event] = [
            Impression(
                f"{request_id}-i", request_id, user_id, items, ts, variant, self.surface, reasons
            )
        ]
        if not items or self.rng.random() >= pref.list_ctr(variant):
            return out
        weights = [
            pref.source_pull.get(source_of(r), 1.0) / (rank + 1) for rank, r in enumerate(reasons)
        ]
        if sum(weights) <= 0:
            return out
        item = self.rng.choices(items, weights)[0]
        steps = [CLICK]
        if self.rng.random() < pref.cart:
            steps.append(ADD_TO_CART)
            if self.rng.random() < pref.purchase:
                steps.append(PURCHASE)
        for n, kind in enumerate(steps, start=1):
            ev_id = f"{request_id}-{kind}"
            at = ts + 200 * n
            out.append(Interaction(ev_id, kind, user_id, item, at, request_id=request_id,
                                   variant=variant))  # fmt: skip
        return out
