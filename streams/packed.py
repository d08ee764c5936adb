"""The packed user record: the orjson record's list in a quarter of the Redis memory.

A 50-item user record in orjson repeats each item id as text, a 4-decimal score and a
reason string: 2,120 B of Redis per user (``MEMORY USAGE``), 106 GB at 50 M users. The
packed record holds a 50-item list with ten anchors in 367 bytes (456 B of Redis) when
every id is a number below 2**32, as most shops' ids are (REES46's are). Layout, little
endian::

    u8   format, always 2 (an orjson record starts with ``{``, 0x7B)
    u16  output version
    u8   variant length, then the variant in UTF-8
    i64  computed_at (ms)     i64  event_ts (ms)
    u8   n items              u8   m recent items (the anchors)
    f32  top score, the highest score of the list
    n    u32 item ids
    n    u8 score codes: score = top * 2 ** (-code / 16), 255 = 0
    n    u8 reason codes: 2 * a for ``b:<recent[a]>``, 2 * a + 1 for ``v:<recent[a]>``,
         253 for ``c`` (trending in the item's own category), 254 for ``t``
    m    u32 recent item ids

What is lost: scores keep 4.4 % steps relative to the top score (they only label a list
whose order is its rank), and a category reason names no category: it is the item's own,
which a reader takes from the item's catalogue record (``item:<id>``).
:func:`pack_user` returns ``None`` for a list it cannot hold exactly that way (an id
that is not such a number, a ``c:`` reason for another category than the item's, more
than 255 items); the caller then writes the orjson record, so a namespace may hold both
and :func:`unpack_user` is only ever reached through a reader that checks the first byte.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from streams.blending import Rec

FORMAT = 2
STEPS_PER_HALVING = 16  # score code resolution: 2 ** (1/16) = 4.4 % per step
ZERO = 255
CATEGORY, TRENDING = 253, 254
MAX_ANCHORS = CATEGORY // 2  # 126: codes 0..251 name an anchor
_HEAD = struct.Struct("<BHB")
_BODY = struct.Struct("<qqBBf")
_I64 = 2**63
# score = top * _FACTOR[code]
_FACTOR = [2.0 ** (-code / STEPS_PER_HALVING) for code in range(ZERO)] + [0.0]


def pack_user(
    recs: Sequence[Rec],
    recent: Sequence[str],
    version: int,
    variant: str,
    computed_at_ms: int,
    event_ts: int,
    category_of: Callable[[str], str | None],
) -> bytes | None:
    """The packed record, or ``None`` when the list does not fit the layout exactly."""
    name = variant.encode()
    n, m = len(recs), len(recent)
    if n > 255 or m > MAX_ANCHORS or len(name) > 255 or not 0 <= version < 2**16:
        return None
    if not (-_I64 <= computed_at_ms < _I64 and -_I64 <= event_ts < _I64):
        return None
    ids = [_u32(r.item_id) for r in recs]
    anchors = [_u32(a) for a in recent]
    if None in ids or None in anchors:
        return None
    where = {a: i for i, a in enumerate(recent)}
    reasons = []
    for r in recs:
        code = _reason_code(r, where, category_of)
        if code is None:
            return None
        reasons.append(code)
    if not all(math.isfinite(r.score) for r in recs):
        return None
    top = max((r.score for r in recs), default=0.0)
    if not -3e38 < top < 3e38:  # beyond float32
        return None
    top = struct.unpack("<f", struct.pack("<f", top))[0]  # what the reader will see
    scores = [_score_code(r.score, top) for r in recs]
    return b"".join(
        (
            _HEAD.pack(FORMAT, version, len(name)),
            name,
            _BODY.pack(computed_at_ms, event_ts, n, m, top),
            struct.pack(f"<{n}I{n}B{n}B{m}I", *ids, *scores, *reasons, *anchors),
        )
    )


def unpack_user(raw: bytes, first: int | None = None) -> dict[str, Any]:
    """The record as the orjson one reads: ``items`` as ``[item_id, score, reason]``.

    ``v`` is 2, and a category reason is ``c`` with no name (see the module docstring).
    With ``first``, only that many items are decoded (a reader serving ten of fifty
    saves most of the work).
    """
    fmt, version, length = _HEAD.unpack_from(raw)
    if fmt != FORMAT:
        raise ValueError(f"not a packed user record (format byte {fmt})")
    at = _HEAD.size
    variant = raw[at : at + length].decode()
    at += length
    computed_at, event_ts, n, m, top = _BODY.unpack_from(raw, at)
    at += _BODY.size
    if at + 6 * n + 4 * m != len(raw):
        raise ValueError("packed user record has trailing or missing bytes")
    k = n if first is None else max(0, min(n, first))
    ids = struct.unpack_from(f"<{k}I", raw, at)
    scores, reasons = raw[at + 4 * n : at + 4 * n + k], raw[at + 5 * n : at + 5 * n + k]
    recent = list(map(str, struct.unpack_from(f"<{m}I", raw, at + 6 * n)))
    why = {code: _reason(code, recent) for code in set(reasons)}
    score = {code: round(top * _FACTOR[code], 4) for code in set(scores)}
    rows = zip(
        map(str, ids), map(score.__getitem__, scores), map(why.__getitem__, reasons), strict=True
    )
    return {
        "v": FORMAT,
        "version": version,
        "variant": variant,
        "computed_at": computed_at,
        "event_ts": event_ts,
        "items": list(map(list, rows)),
        "recent": recent,
    }


def _u32(text: str) -> int | None:
    """The id as a number when its text is exactly that number's decimal form."""
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        return None
    value = int(text)
    return value if value < 2**32 else None


def _reason_code(
    rec: Rec, where: dict[str, int], category_of: Callable[[str], str | None]
) -> int | None:
    kind, sep, arg = rec.reason.partition(":")
    if rec.reason == "t":
        return TRENDING
    if sep and kind in ("b", "v") and arg in where:
        return 2 * where[arg] + (kind == "v")
    if sep and kind == "c" and arg and category_of(rec.item_id) == arg:
        return CATEGORY
    return None


def _score_code(score: float, top: float) -> int:
    if score <= 0 or top <= 0:
        return ZERO
    steps = round(STEPS_PER_HALVING * (math.log2(top) - math.log2(score)))
    return ZERO if steps >= ZERO else max(0, steps)


def _reason(code: int, recent: Sequence[str]) -> str:
    if code == TRENDING:
        return "t"
    if code == CATEGORY:
        return "c"
    if code // 2 >= len(recent):
        raise ValueError(f"reason code {code} names no recent item")
    return ("b:", "v:")[code % 2] + recent[code // 2]
