"""Hostile interaction payloads, generated offline with hypothesis into a plain list.

Each payload is a ``(key, value)`` pair that ingest must reject. :func:`expected_reason`
states the contract independently of the worker (decode, then key = user_id), and
:func:`hostile_payloads` keeps only payloads it rejects, so every one must reach the
dead-letter topic with exactly that reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.codec import decode_interaction
from schemas.errors import DecodeError
from schemas.events import INTERACTION_TYPES
from schemas.fields import MAX_TS_MS
from schemas.ids import FORBIDDEN

Payload = tuple[bytes | None, bytes | None]
FIELDS = ["event_id", "type", "user_id", "item_id", "ts", "session_id", "request_id",
          "variant", "price", "quantity", "context", "v"]  # fmt: skip


def expected_reason(payload: Payload, max_bytes: int) -> str | None:
    """The dead-letter reason ingest must give, or ``None`` for a valid event."""
    key, value = payload
    try:
        event = decode_interaction(value, max_bytes)
    except DecodeError as exc:
        return exc.code
    return None if key == event.user_id.encode() else "key_mismatch"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_forbidden_char = st.sampled_from(FORBIDDEN).flatmap(lambda r: st.integers(*r)).map(chr)


@st.composite
def _hostile_id(draw: st.DrawFn) -> str:
    """An id with a forbidden character somewhere, or too long, or empty."""
    base = draw(st.text(min_size=0, max_size=300))
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(base)))
        base = base[:pos] + draw(_forbidden_char) + base[pos:]
    elif draw(st.booleans()):
        base = base + "x" * draw(st.integers(257, 600))
    return base


def _dump(obj: Any) -> bytes:
    # Surrogates cannot go through orjson; write them as JSON escapes, as a hostile
    # producer would.
    if isinstance(obj, dict):
        return b"{" + b",".join(_dump(str(k)) + b":" + _dump(v) for k, v in obj.items()) + b"}"
    if isinstance(obj, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in obj):
        parts = (f"\\u{ord(c):04x}" if ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF else c
                 for c in obj.replace("\\", "\\\\").replace('"', '\\"'))  # fmt: skip
        return ('"' + "".join(parts) + '"').encode("utf-8", "surrogatepass")
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj).encode()  # any size, as JSON allows
    if isinstance(obj, list):
        return b"[" + b",".join(map(_dump, obj)) + b"]"
    return orjson.dumps(obj)


_id = st.text(
    st.characters(blacklist_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), min_size=1, max_size=24
)
_base = st.fixed_dictionaries(
    {
        "event_id": _id,
        "type": st.sampled_from(INTERACTION_TYPES),
        "user_id": _id,
        "item_id": _id,
        "ts": st.integers(0, MAX_TS_MS),
    }
)
_huge_numbers = st.sampled_from(
    [b"1e400", b"-1e400", b"100000000000000000000000000000", b"18446744073709551616",
     b"-9223372036854775809", b"9007199254740992", b"-1", b"1.5", b"NaN", b"Infinity", b"0x10"]
)  # fmt: skip
_bad_utf8 = st.sampled_from(
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc0\xaf"]
)


Build = Callable[[dict[str, Any]], bytes]


@st.composite
def _value(draw: st.DrawFn) -> Build:
    """How to make a valid event malformed: all choices drawn, applied to the event later."""
    kind = draw(st.sampled_from(VALUE_KINDS))
    if kind == "bytes":
        junk = draw(st.binary(max_size=300))
        return lambda ev: junk
    if kind == "not_object":
        doc = orjson.dumps(draw(_json.filter(lambda v: not isinstance(v, dict))))
        return lambda ev: doc
    if kind == "wrong_type":
        name, wrong = draw(st.sampled_from(FIELDS)), draw(_json)
        return lambda ev: _dump({**ev, name: wrong})
    if kind == "missing":
        gone = draw(st.sampled_from(REQUIRED))
        return lambda ev: _dump({k: v for k, v in ev.items() if k != gone})
    if kind == "unknown_type":
        type_ = draw(st.text(max_size=30))
        return lambda ev: _dump({**ev, "type": type_})
    if kind == "version":
        version = draw(st.integers() | st.text(max_size=5) | st.floats())
        return lambda ev: _dump({**ev, "v": version})
    if kind == "hostile_id":
        name = draw(st.sampled_from(["event_id", "user_id", "item_id", "session_id"]))
        ident = draw(_hostile_id())
        return lambda ev: _dump({**ev, name: ident})
    if kind == "huge_number":
        name, number = draw(st.sampled_from(["ts", "price", "quantity"])), draw(_huge_numbers)
        return lambda ev: _dump({**ev, name: "@"}).replace(b'"@"', number)
    if kind == "deep":
        depth = draw(st.integers(1025, 4000))
        nest = draw(st.sampled_from([b"[", b'{"a":'])) * depth + b"1" + b"]" * depth
        return lambda ev: _dump({**ev, "context": "@"}).replace(b'"@"', nest)
    cut, junk = draw(st.integers(0, 400)), draw(_bad_utf8)  # bad UTF-8
    return lambda ev: (lambda raw: raw[: cut % len(raw)] + junk + raw[cut % len(raw) :])(_dump(ev))


VALUE_KINDS = [
    "bytes", "not_object", "wrong_type", "missing", "unknown_type", "version",
    "hostile_id", "huge_number", "deep", "bad_utf8",
]  # fmt: skip
REQUIRED = ["event_id", "type", "user_id", "item_id", "ts"]


@st.composite
def _payload(draw: st.DrawFn) -> Callable[[int], Payload]:
    """A payload, given a serial number for its event id (see :func:`hostile_payloads`)."""
    ev = draw(_base)
    # weights by repetition; the common case first, as hypothesis draws the first most
    roll = draw(st.sampled_from(["value"] * 18 + ["tombstone", "wrong_key"]))
    if roll == "tombstone":
        return lambda n: (f"{n}-{ev['user_id']}".encode(), None)
    if roll == "wrong_key":  # a valid event under the wrong key
        other = draw(st.none() | st.binary(max_size=30) | st.just(b""))
        return lambda n: (other, _dump(_numbered(ev, n)))
    key = draw(st.none() | st.binary(max_size=30)) if draw(st.integers(0, 9)) == 0 else None
    build = draw(_value())
    return lambda n: (key or ev["user_id"].encode(), build(_numbered(ev, n)))


def _numbered(ev: dict[str, Any], n: int) -> dict[str, Any]:
    return {**ev, "event_id": f"{n}-{ev['event_id']}"}


_oversized = st.builds(
    lambda ev, n: (ev["user_id"].encode(), _dump({**ev, "context": {"p": "x" * n}})),
    _base,
    st.integers(16_385, 40_000),
)
BATCH = 50


def hostile_payloads(n: int, oversized: int, max_bytes: int) -> list[Payload]:
    """``n`` payloads ingest must reject (``oversized`` of them over ``max_bytes``)."""
    out: list[Payload] = []
    serial = itertools.count()
    seen: set[Payload] = set()
    big_ones: list[Payload] = []

    @settings(
        max_examples=n * 3 // (2 * BATCH) + 20,  # a quarter of the draws are duplicates
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(_payload(), min_size=BATCH, max_size=BATCH), _oversized)
    def collect(batch: list[Callable[[int], Payload]], big: Payload) -> None:
        # hypothesis favours simple values, so many drawn events are equal; a serial
        # number in event_id keeps payloads apart without making them less hostile
        for make in batch:
            p = make(next(serial))
            if len(out) < n and p not in seen and expected_reason(p, max_bytes) is not None:
                seen.add(p)
                out.append(p)
        if len(big_ones) < oversized:
            big_ones.append(big)

    collect()
    assert len(out) == n, f"only {len(out)} distinct hostile payloads generated"
    return [*big_ones, *out[: n - len(big_ones)]]
