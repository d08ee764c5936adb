"""Drift detection: one River ADWIN per monitored stream, turned into alerts.

A stream is a (detector, key) pair: ``("ctr", "B")`` is variant B's click outcome per
closed list (1 clicked, 0 not); a ranker reports its per-example loss as
``("ranker_loss", variant)`` through the same :meth:`DriftMonitor.observe` hook. ADWIN
keeps an adaptive window and flags a change when two sub-windows differ in mean by more
than chance at confidence ``delta``; it then drops the older part, so one change raises
one alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from river.drift import ADWIN

CTR = "ctr"
RANKER_LOSS = "ranker_loss"


@dataclass(frozen=True, slots=True)
class Alert:
    """A detected change, in the shape stored in Redis and sent to the alerts topic."""

    ts_ms: int
    detector: str
    variant: str
    message: str

    def to_dict(self) -> dict[str, object]:
        """``{"ts_ms", "detector", "variant", "message"}``."""
        return {
            "ts_ms": self.ts_ms,
            "detector": self.detector,
            "variant": self.variant,
            "message": self.message,
        }


@dataclass
class DriftMonitor:
    """ADWIN detectors created on first use, one per (detector, key)."""

    delta: float = 0.002
    detectors: dict[tuple[str, str], ADWIN] = field(default_factory=dict)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def observe(self, detector: str, key: str, value: float, ts_ms: int) -> Alert | None:
        """Feed one value; an :class:`Alert` when the stream's mean has changed."""
        k = (detector, key)
        adwin = self.detectors.get(k)
        if adwin is None:
            adwin = self.detectors[k] = ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]
        total, n = adwin.estimation * adwin.width, adwin.width
        adwin.update(value)  # type: ignore[no-untyped-call]
        self.seen[k] = self.seen.get(k, 0) + 1
        if not adwin.drift_detected:
            return None
        # ADWIN dropped the older part of its window: compare that part with what it
        # kept, not the whole window (which already held the new values) with the rest.
        kept_n, kept_mean = adwin.width, adwin.estimation
        dropped_n = n + 1 - kept_n
        before = (total + value - kept_mean * kept_n) / dropped_n if dropped_n else kept_mean
        return Alert(
            ts_ms,
            detector,
            key,
            f"{detector} of {key} changed: mean {before:.4f} over the {int(dropped_n)} "
            f"observations before -> {kept_mean:.4f} over the latest {int(kept_n)} "
            f"({self.seen[k]} in all)",
        )
