"""The dead-letter envelope: why a record was rejected, where it came from, its original bytes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.fields import Field, Schema


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record. ``original`` holds the exact bytes that were consumed."""

    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    agent: str
    dead_lettered_at: int
    original: bytes | None
    key: bytes | None = None
    field: str | None = None

    def to_bytes(self) -> bytes:
        """Encode as JSON; bytes are base64 so any payload survives."""
        return orjson.dumps(
            {
                "v": 1,
                "reason": self.reason,
                "error": self.error,
                "field": self.field,
                "source": {
                    "topic": self.source_topic,
                    "partition": self.source_partition,
                    "offset": self.source_offset,
                },
                "agent": self.agent,
                "dead_lettered_at": self.dead_lettered_at,
                "key_b64": _b64(self.key),
                "original_b64": _b64(self.original),
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        """Decode an envelope written by :meth:`to_bytes`."""
        obj: dict[str, Any] = orjson.loads(raw)
        src = obj["source"]
        return cls(
            reason=obj["reason"],
            error=obj["error"],
            field=obj.get("field"),
            source_topic=src["topic"],
            source_partition=src["partition"],
            source_offset=src["offset"],
            agent=obj["agent"],
            dead_lettered_at=obj["dead_lettered_at"],
            key=_unb64(obj.get("key_b64")),
            original=_unb64(obj.get("original_b64")),
        )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


DEAD_LETTER = Schema(
    "dead_letter",
    1,
    (
        Field(
            "reason",
            "str",
            True,
            "stable code: not_json, missing_field, wrong_type, "
            "oversized, unknown_type, bad_value, not_object, unsupported_version, empty",
        ),
        Field("error", "str", True, "human-readable message", max_len=4096),
        Field("field", "str", doc="offending field, when there is one"),
        Field("source", "object", True, "{topic, partition, offset} of the rejected record"),
        Field("agent", "str", True, "the agent that rejected it"),
        Field("dead_lettered_at", "ts", True, "wall-clock time of rejection, epoch ms"),
        Field("key_b64", "str", doc="original message key, base64", max_len=1 << 20),
        Field(
            "original_b64",
            "str",
            doc="original message value, base64 (null for a tombstone)",
            max_len=1 << 24,
        ),
    ),
    "A rejected record. Topic `<source>.dead-letter`, key = the original key.",
)
