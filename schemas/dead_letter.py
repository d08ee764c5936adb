"""The dead-letter envelope: why a record was rejected, where it came from, its original bytes."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.fields import Field, Schema

# A dead letter is sent as one record (its key and envelope) and must fit the producers'
# request limit (1,000,000 bytes, Faust's and librdkafka's default) with room for the
# record's framing. A record the broker accepted can still be too large once its bytes
# are base64 in an envelope (a 760 kB value gives a 1 MB envelope): its bytes are then
# described (length and SHA-256) instead of carried, so the rejection is still recorded
# and the worker goes on, rather than failing on the send and meeting the record again.
MAX_LETTER_BYTES = 900_000
# The record key of a dead letter is the original key, unless that is longer than this
# (no valid key is: ids are at most 256 characters); then it is the key's SHA-256 (hex).
MAX_LETTER_KEY_BYTES = 4_096
MAX_ERROR_CHARS = 4_096


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
    # The record's headers, in order, and its Kafka timestamp (epoch ms).
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None
    # Fields not carried because the envelope would not fit MAX_LETTER_BYTES: name
    # ("original", "headers", "key") -> {"len": bytes, "sha256": hex digest}.
    dropped: dict[str, dict[str, Any]] | None = None

    def to_bytes(self, limit: int = MAX_LETTER_BYTES) -> bytes:
        """Encode as JSON; bytes are base64 so any payload survives (see :meth:`encode`)."""
        return self.encode(limit)[0]

    def encode(self, limit: int = MAX_LETTER_BYTES) -> tuple[bytes, list[str]]:
        """The JSON envelope, and the byte fields it could not carry.

        The envelope and its record key (:func:`letter_key`) together stay within
        ``limit``: when carrying them all would not fit, the largest of the original
        value, the headers and the key are replaced by their length and SHA-256 in
        ``dropped``, one by one, until it does. The error text is cut
        to ``MAX_ERROR_CHARS``.
        """
        error = self.error
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        doc: dict[str, Any] = {
            "v": 1,
            "reason": self.reason,
            "error": error,
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
            "timestamp": self.timestamp,
            "headers": [[k, _b64(v)] for k, v in self.headers] or None,
        }
        raw = orjson.dumps(doc)
        room = limit - len(letter_key(self.key) or b"")
        headers = orjson.dumps(doc["headers"]) if self.headers else None
        fields = (("original", self.original), ("headers", headers), ("key", self.key))
        # The largest first: as little as possible is left out.
        for name, data in sorted(
            ((n, d) for n, d in fields if d is not None), key=lambda f: -len(f[1])
        ):
            if len(raw) <= room:
                break
            doc["headers" if name == "headers" else f"{name}_b64"] = None
            doc.setdefault("dropped", {})[name] = {
                "len": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            raw = orjson.dumps(doc)
        return raw, list(doc.get("dropped", ()))

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
            headers=tuple((k, _unb64(v)) for k, v in obj.get("headers") or ()),
            timestamp=obj.get("timestamp"),
            dropped=obj.get("dropped"),
        )


def letter_key(key: bytes | None) -> bytes | None:
    """The record key of the dead letter of a record keyed ``key``."""
    if key is None or len(key) <= MAX_LETTER_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode("ascii")


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
            "stable code: not_json, missing_field, wrong_type, oversized, unknown_type, "
            "bad_value, not_object, unsupported_version, empty, key_mismatch, wrong_partition",
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
            doc="original message value, base64 (null for a tombstone, or when dropped)",
            max_len=1 << 24,
        ),
        Field("timestamp", "int", doc="the record's Kafka timestamp, epoch ms"),
        Field(
            "headers",
            "list",
            doc="the record's headers in order: [[key, value base64 or null], ...]",
            max_items=10_000,
        ),
        Field(
            "dropped",
            "object",
            doc="fields not carried, the envelope being capped at 900,000 bytes: "
            '{"original"|"headers"|"key": {"len", "sha256"}} (headers: of their JSON); '
            "such a letter cannot be replayed",
        ),
    ),
    "A rejected record. Topic `<source>.dead-letter`, key = the original key (its SHA-256 "
    "in hex when longer than 4,096 bytes).",
)
