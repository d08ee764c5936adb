"""JSON Lines files of schema events: the loader's native format, decoded by the schemas codec.

One JSON object per line. ``"kind"`` names its schema: ``"interaction"``, ``"impression"`` or
``"catalog"``; a line without ``"kind"`` is an interaction (the usual clickstream export, which
carries a ``"type"``). The other keys are the event's fields as documented in the JSON Schema
files; ``"kind"`` itself is ignored by the codec. Blank lines are skipped. A line that fails
to decode comes out as :class:`SourceError` whose reason is the codec's error code
(``not_json``, ``missing_field``, ``wrong_type``, ...) or ``unknown_kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from schemas.codec import (
    DEFAULT_MAX_BYTES,
    decode_catalog,
    decode_impression,
    decode_interaction,
    encode,
)
from schemas.errors import DecodeError
from schemas.events import CatalogItem, Impression
from streams.sources.records import BOM, SourceError, SourceEvent, SourceRecord

_DECODERS: dict[str, Callable[[bytes, int], SourceEvent]] = {
    "interaction": decode_interaction,
    "impression": decode_impression,
    "catalog": decode_catalog,
}


def kind_of(event: SourceEvent) -> str:
    """The ``"kind"`` tag of an event in a JSON Lines file."""
    if isinstance(event, CatalogItem):
        return "catalog"
    return "impression" if isinstance(event, Impression) else "interaction"


def read_jsonl(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[SourceRecord]:
    """Events of a JSON Lines file in file order; undecodable lines as :class:`SourceError`."""
    source = str(path)
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            line = (raw.removeprefix(BOM) if line_no == 1 else raw).strip()
            if not line:
                continue
            try:
                yield _DECODERS[_kind(line)](line, max_bytes)
            except DecodeError as exc:
                text = line.decode("utf-8", "replace")
                yield SourceError(line_no, exc.code, text, str(exc), source)


def write_jsonl(path: str | Path, events: Iterable[SourceEvent]) -> int:
    """Write events as kind-tagged JSON Lines for :func:`read_jsonl`; returns the count."""
    count = 0
    with open(path, "wb") as fh:
        for event in events:
            fh.write(to_jsonl(event))
            count += 1
    return count


def to_jsonl(event: SourceEvent) -> bytes:
    """One event as a kind-tagged JSON line, newline included."""
    body = encode(event)
    return b'{"kind":"' + kind_of(event).encode() + b'",' + body[1:] + b"\n"


def _kind(line: bytes) -> str:
    # Only parse twice when a kind tag may be present; bare interactions go straight to the codec.
    if b'"kind"' not in line:
        return "interaction"
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "interaction"  # let the codec report not_json with its own message
    kind = obj.get("kind", "interaction") if isinstance(obj, dict) else "interaction"
    if not isinstance(kind, str) or kind not in _DECODERS:
        raise DecodeError(
            "unknown_kind", f"kind {kind!r} is not one of {', '.join(_DECODERS)}", "kind"
        )
    return kind
