"""Which dead-lettered records to send back to their source topic, and the account of a run.

Pure logic for ``kapparec dlq replay``: the filter (reason, time), de-duplication (one
send per dead-letter record, and per original source offset, in a run), parsing of
``--since`` and loading of a fix-up hook. The Kafka side is ``agents.redelivery``.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.dead_letter import DeadLetter

# A fix-up hook gets the original key and value and the envelope; it returns the key and
# value to send, or None to leave the record in the dead-letter topic.
Record = tuple[bytes | None, bytes | None]
Fix = Callable[[bytes | None, bytes | None, DeadLetter], Record | None]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class SelectionError(ValueError):
    """A ``--since`` or ``--fix`` value that cannot be used; the message says why."""


def parse_since(text: str, now_ms: int) -> int:
    """Epoch ms from ``1700000000000`` (epoch ms), ``2h``/``30m``/``7d`` (ago) or ISO 8601."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    ago = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text)
    if ago:
        return now_ms - int(float(ago.group(1)) * _UNITS[ago.group(2)] * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SelectionError(
            f"--since {text!r}: give epoch ms, a duration ago (30m, 2h, 7d) or ISO 8601"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def load_fix(spec: str) -> Fix:
    """The callable named ``package.module:function``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SelectionError(f"--fix {spec!r}: expected package.module:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SelectionError(f"--fix {spec!r}: {exc}") from None
    if not callable(fn):
        raise SelectionError(f"--fix {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Selection:
    """Dead letters to replay: optionally of one reason, dead-lettered at or after a time."""

    reason: str | None = None
    since_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` passes the filter."""
        if self.reason is not None and letter.reason != self.reason:
            return False
        return self.since_ms is None or letter.dead_lettered_at >= self.since_ms


@dataclass
class ReplaySummary:
    """What one replay run did with every dead-letter record it read."""

    dry_run: bool = False
    read: int = 0
    unreadable: int = 0
    filtered_out: int = 0
    duplicates: int = 0
    kept_by_fix: int = 0
    # Letters whose original bytes were too large to carry (DeadLetter.dropped).
    not_carried: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    _seen: set[tuple[str, int, int]] = field(default_factory=set, repr=False)

    def first_time(self, letter: DeadLetter) -> bool:
        """False for a second envelope of the same source record (a redone batch)."""
        origin = (letter.source_topic, letter.source_partition, letter.source_offset)
        if origin in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(origin)
        return True

    @property
    def ok(self) -> bool:
        """True when nothing that was sent failed."""
        return not self.failed

    def __str__(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        lines = [f"read {self.read} dead letter(s); {verb} {sum(self.sent.values())}"]
        lines += [f"  {verb} {reason}: {n}" for reason, n in sorted(self.sent.items())]
        for label, n in (
            ("not matching --reason/--since", self.filtered_out),
            ("same source record seen before in this run", self.duplicates),
            ("left in place by the fix-up hook", self.kept_by_fix),
            ("unreadable envelopes", self.unreadable),
            ("original bytes not carried (too large to dead-letter whole)", self.not_carried),
        ):
            if n:
                lines.append(f"skipped, {label}: {n}")
        for title, counts in (("still invalid, not sent", self.still_invalid),
                              ("failed", self.failed)):  # fmt: skip
            if counts:
                lines.append(f"{title}: {sum(counts.values())}")
                lines += [f"  {k}: {n}" for k, n in sorted(counts.items())]
        return "\n".join(lines)
