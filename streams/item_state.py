"""Per-item state on the partition that owns the item: popularity and neighbour lists.

Popularity (``trend``) is event-time decayed (see :mod:`streams.decay`); neighbour scores
are plain sums of pair weights. Decaying them with the trending half-life (3 days) lost
most of the co-visitation evidence of catalogues whose pairs accumulate over months
(measured in docs/MODELS.md). Each relation keeps at most ``neighbours_kept``
neighbours; when full, the weakest is dropped, which bounds memory per item whatever
the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams import decay
from streams.user_state import Delta


@dataclass(slots=True)
class ItemState:
    """Popularity counters and neighbour lists of one item."""

    count: float = 0.0
    trend: float = decay.NEG_INF
    last_ts: int = 0
    neighbours: dict[str, dict[str, float]] = field(default_factory=dict)
    # Last applied source offset per source partition, stored with the state it guards so
    # that state and de-duplication are written (and recovered) together.
    applied: dict[int, int] = field(default_factory=dict)

    def seen(self, source_partition: int, offset: int) -> bool:
        """True when the interaction at this source offset was applied to this item."""
        return offset <= self.applied.get(source_partition, -1)

    def apply(self, delta: Delta, half_life_s: float, neighbours_kept: int) -> None:
        """Apply one delta addressed to this item."""
        self.last_ts = max(self.last_ts, delta.ts)
        if delta.relation is None:
            self.count += delta.weight
            self.trend = decay.add(self.trend, delta.weight, delta.ts, half_life_s)
            return
        assert delta.other is not None
        scores = self.neighbours.setdefault(delta.relation, {})
        scores[delta.other] = scores.get(delta.other, 0.0) + delta.weight
        if len(scores) > neighbours_kept:
            weakest = max(scores, key=lambda k: (-scores[k], k))  # last in top() order
            del scores[weakest]

    def top(self, relation: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest neighbours in ``relation`` with their summed weights, best first."""
        scores = self.neighbours.get(relation, {})
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:n]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the table changelog."""
        return {
            "c": self.count,
            "t": _finite(self.trend),
            "l": self.last_ts,
            "n": self.neighbours,
            "a": {str(k): v for k, v in self.applied.items()},  # JSON keys are text
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemState:
        """Inverse of :meth:`to_dict`."""
        trend = data["t"]
        return cls(
            count=data["c"],
            trend=decay.NEG_INF if trend is None else trend,
            last_ts=data["l"],
            neighbours={r: dict(s) for r, s in data["n"].items()},
            applied={int(k): v for k, v in data.get("a", {}).items()},
        )


def _finite(x: float) -> float | None:
    return None if x == decay.NEG_INF else x


def scored_list(
    ranked: list[tuple[str, float]], now_ms: int, half_life_s: float
) -> list[list[Any]]:
    """Log-space scores as decayed weights at ``now_ms``, rounded for compact storage."""
    return [[item, round(decay.value_at(s, now_ms, half_life_s), 4)] for item, s in ranked]
