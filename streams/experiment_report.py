"""Global experiment totals, folded from every partition's attribution records, and the report.

Each user partition sends its records in messages ``{"p": partition, "g": groups}``,
where a group ``[topic_kind, offset, [record, ...]]`` holds what one input message
produced. The totals remember the last offset applied per (topic kind, partition), so a
batch redone after a restart is not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.abtest import compare, wilson
from streams.attribution import NO_VARIANT, Record
from streams.drift import CTR

Group = list[Any]  # [topic kind, offset, [record, ...]]
Observation = tuple[str, str, float, int]  # detector, key, value, event time


def encode_groups(partition: int, groups: Sequence[Group]) -> bytes:
    """One outcomes message of ``partition``."""
    return orjson.dumps({"p": partition, "g": groups})


def encode_messages(partition: int, groups: Sequence[Group], max_bytes: int) -> list[bytes]:
    """Outcomes messages of ``partition``, in order, each under ``max_bytes`` unless one
    group alone is larger (a group, one input message's records, is never split: the
    totals skip groups by their offset)."""
    whole = encode_groups(partition, groups)
    if len(whole) <= max_bytes or len(groups) < 2:
        return [whole]
    half = len(groups) // 2
    return [
        *encode_messages(partition, groups[:half], max_bytes),
        *encode_messages(partition, groups[half:], max_bytes),
    ]


def observation(detector: str, key: str, value: float, ts_ms: int) -> Record:
    """A record that feeds drift detector ``detector`` (e.g. a ranker's loss per variant)."""
    return ["obs", detector, key, value, ts_ms]


@dataclass
class Totals:
    """Counts per variant and per candidate source, and the offsets already applied."""

    variants: dict[str, list[int]] = field(default_factory=dict)  # [impressions, clicks, conv]
    sources: dict[str, list[int]] = field(default_factory=dict)  # [slots shown, slots clicked]
    applied: dict[str, int] = field(default_factory=dict)

    def apply_message(self, raw: bytes) -> list[Observation]:
        """Fold one outcomes message; returns the observations for the drift detectors."""
        msg = orjson.loads(raw)
        p = msg["p"]
        out: list[Observation] = []
        for kind, offset, records in msg["g"]:
            key = f"{kind}/{p}"
            if offset <= self.applied.get(key, -1):
                continue
            self.applied[key] = offset
            out += self.apply(records)
        return out

    def apply(self, records: Iterable[Record]) -> list[Observation]:
        """Fold records (no de-duplication); returns drift observations."""
        out: list[Observation] = []
        for r in records:
            tag = r[0]
            if tag == "imp":
                self._variant(r[1])[0] += 1
                for source in r[2]:
                    self._source(source)[0] += 1
            elif tag == "clk":
                self._source(r[2])[1] += 1
                if r[3]:
                    self._variant(r[1])[1] += 1
            elif tag == "cnv":
                self._variant(r[1])[2] += 1
            elif tag == "fin":
                out.append((CTR, r[1], float(r[2]), r[3]))
            elif tag == "obs":
                out.append((r[1], r[2], float(r[3]), r[4]))
        return out

    def _variant(self, name: str) -> list[int]:
        return self.variants.setdefault(name, [0, 0, 0])

    def _source(self, name: str) -> list[int]:
        return self.sources.setdefault(name, [0, 0])

    def report(
        self, variants: Sequence[str], method: str, alpha: float, now_ms: int
    ) -> dict[str, Any]:
        """The ``metrics:ab`` document (its shape is a contract with the dashboard)."""
        names = list(dict.fromkeys([*variants, *sorted(self.variants)]))
        counts = {v: self.variants.get(v, [0, 0, 0]) for v in names}
        # Lists shown without a variant are reported, not tested: they are no arm.
        tested = {v: (c[1], c[0]) for v, c in counts.items() if v != NO_VARIANT}
        verdict = compare(tested, method, alpha)
        return {
            "variants": {
                v: {
                    "impressions": n,
                    "clicks": clk,
                    "conversions": cnv,
                    "ctr": clk / n if n else 0.0,
                    "ctr_ci": list(wilson(clk, n)),
                }
                for v, (n, clk, cnv) in counts.items()
            },
            "test": {
                "method": verdict.method,
                "p_value": verdict.p_value,
                "significant": verdict.significant,
                "leader": verdict.leader,
            },
            "by_source": {
                s: {"impressions": n, "clicks": clk, "ctr": clk / n if n else 0.0}
                for s, (n, clk) in sorted(self.sources.items())
            },
            "updated_ms": now_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (table changelog)."""
        return {"v": self.variants, "s": self.sources, "a": self.applied}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Totals:
        """Inverse of :meth:`to_dict`."""
        return cls(dict(d["v"]), dict(d["s"]), dict(d["a"]))
