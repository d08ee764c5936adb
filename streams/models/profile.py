"""What the models remember per user: recent items with strength and event time, and the
user vector built from them (decayed in event time)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, REMOVE_FROM_CART, VIEW

# How much an interaction says about the user's taste; a MovieLens rating below 4 is a
# "view": seen, so evidence of the user's area of interest, but weaker.
STRENGTH = {VIEW: 0.5, CLICK: 0.5, ADD_TO_CART: 1.0, PURCHASE: 1.0, REMOVE_FROM_CART: 0.0}


@dataclass(slots=True)
class Profile:
    """A user's last ``size`` interactions as ``(item number, strength, ts)``, oldest first."""

    history: list[tuple[int, float, int]] = field(default_factory=list)
    purchased: set[int] = field(default_factory=set)
    n_events: int = 0

    def add(self, item: int, strength: float, ts: int, purchase: bool, size: int) -> None:
        """Append one interaction (kept in event-time order) and trim to ``size``."""
        self.n_events += 1
        if purchase:
            self.purchased.add(item)
        pos = len(self.history)
        while pos > 0 and self.history[pos - 1][2] > ts:
            pos -= 1  # a late event goes where its event time puts it
        self.history.insert(pos, (item, strength, ts))
        del self.history[:-size]

    def pairs(self) -> list[tuple[int, float]]:
        """``(item, strength)`` oldest first: what a new interaction is paired with."""
        return [(i, w) for i, w, _ in self.history]

    def anchors(self, n: int, recency: float) -> tuple[list[int], list[float]]:
        """The last ``n`` items and their weights: strength times ``recency ** rank``."""
        items: list[int] = []
        weights: list[float] = []
        for rank, (i, w, _) in enumerate(reversed(self.history[-n:])):
            if w > 0:
                items.append(i)
                weights.append(w * recency**rank)
        return items, weights

    def decay_weights(self, now_ts: int, half_life_ms: float) -> npt.NDArray[np.float64]:
        """Event-time decay ``2 ** (-(now - ts) / half_life)`` times strength, per history row."""
        ts = np.asarray([t for _, _, t in self.history], dtype=np.float64)
        w = np.asarray([s for _, s, _ in self.history], dtype=np.float64)
        out: npt.NDArray[np.float64] = w * np.exp2(-np.maximum(now_ts - ts, 0.0) / half_life_ms)
        return out
