"""The orjson codec: raw bytes in, typed events out, or a :class:`DecodeError` that says why."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from schemas.errors import DecodeError
from schemas.events import (
    CATALOG_ITEM,
    IMPRESSION,
    INTERACTION,
    CatalogItem,
    Impression,
    Interaction,
)
from schemas.fields import Schema

DEFAULT_MAX_BYTES = 16_384


def _load(raw: bytes | None, schema: Schema, max_bytes: int) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("empty", "message has no value (tombstone)")
    if len(raw) > max_bytes:
        raise DecodeError("oversized", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("not_json", f"not valid UTF-8 JSON: {exc}") from None
    return schema.validate(obj)


def decode_interaction(raw: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Interaction:
    """Decode and validate one interaction event."""
    return Interaction(**_load(raw, INTERACTION, max_bytes))


def decode_impression(raw: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Impression:
    """Decode and validate one impression event."""
    return Impression(**_load(raw, IMPRESSION, max_bytes))


def decode_catalog(raw: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> CatalogItem:
    """Decode and validate one catalog record."""
    return CatalogItem(**_load(raw, CATALOG_ITEM, max_bytes))


def encode(event: Interaction | Impression | CatalogItem) -> bytes:
    """Serialize an event; unset optional fields are left out."""
    # A field loop, not dataclasses.asdict: asdict deep-copies and is 5x slower.
    data = {k: v for k in _FIELD_NAMES[type(event)] if (v := getattr(event, k)) is not None}
    return orjson.dumps(data)


_FIELD_NAMES = {
    cls: tuple(f.name for f in fields(cls)) for cls in (Interaction, Impression, CatalogItem)
}


_KEYED_BY = {"interaction": "user_id", "impression": "user_id", "catalog_item": "item_id"}
_DECODERS = {
    "interaction": decode_interaction,
    "impression": decode_impression,
    "catalog_item": decode_catalog,
}


KEY_SHOWN = 64  # bytes of a mismatched key quoted in the error


def check_key(key: bytes | None, expected: str, field: str) -> None:
    """The record's key must be its ``field`` (the id that partitions its state)."""
    if key is None or key != expected.encode():
        shown = key if key is None or len(key) <= KEY_SHOWN else key[:KEY_SHOWN] + b"..."
        raise DecodeError(
            "key_mismatch", f"message key {shown!r} must equal {field} {expected!r}", field
        )


def check_record(kind: str, key: bytes | None, value: bytes | None, max_bytes: int) -> None:
    """Raise the :class:`DecodeError` ingest would give a ``kind`` record (key rule included)."""
    event = _DECODERS[kind](value, max_bytes)
    field = _KEYED_BY[kind]
    check_key(key, getattr(event, field), field)
