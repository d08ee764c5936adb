"""The codec: raw bytes in, a typed event or a DecodeError with a stable code and field out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    DEFAULT_MAX_BYTES,
    decode_catalog,
    decode_impression,
    decode_interaction,
    encode,
)
from schemas.dead_letter import MAX_ERROR_CHARS, MAX_LETTER_BYTES, DeadLetter, letter_key
from schemas.errors import DecodeError, KapparecError
from schemas.events import CatalogItem, Impression, Interaction

TS = 1_700_000_000_000

MIN_INTERACTION: dict[str, Any] = {
    "event_id": "e1",
    "type": "view",
    "user_id": "u1",
    "item_id": "i1",
    "ts": TS,
}
MIN_IMPRESSION: dict[str, Any] = {
    "event_id": "e2",
    "request_id": "r1",
    "user_id": "u1",
    "items": ["i1", "i2"],
    "ts": TS,
}
MIN_CATALOG: dict[str, Any] = {"item_id": "i1", "ts": TS}


def _raw(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _with(base: dict[str, Any], **changes: Any) -> bytes:
    return _raw({**base, **changes})


def _without(base: dict[str, Any], name: str) -> bytes:
    return _raw({k: v for k, v in base.items() if k != name})


def _error(decode: Callable[[bytes | None], Any], raw: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    return info.value


# --- valid events --------------------------------------------------------------------


def test_minimal_interaction() -> None:
    ev = decode_interaction(_raw(MIN_INTERACTION))
    assert ev == Interaction(event_id="e1", type="view", user_id="u1", item_id="i1", ts=TS)
    assert ev.session_id is None and ev.price is None and ev.context is None


def test_full_interaction() -> None:
    raw = _raw(
        {
            "v": 1,
            "event_id": "e9",
            "type": "purchase",
            "user_id": "u:1/ü",
            "item_id": "sku-42",
            "ts": TS,
            "session_id": "s1",
            "request_id": "r7",
            "variant": "B",
            "price": 19,  # an integer price is still a number
            "quantity": 2,
            "context": {"device": "ios", "page": 3},
        }
    )
    ev = decode_interaction(raw)
    assert ev == Interaction("e9", "purchase", "u:1/ü", "sku-42", TS, "s1", "r7", "B", 19.0, 2)
    assert isinstance(ev.price, float)
    assert ev.context == {"device": "ios", "page": 3}


def test_every_interaction_type_is_accepted() -> None:
    for t in ("view", "click", "add_to_cart", "remove_from_cart", "purchase"):
        assert decode_interaction(_with(MIN_INTERACTION, type=t)).type == t


def test_minimal_and_full_impression() -> None:
    ev = decode_impression(_raw(MIN_IMPRESSION))
    assert ev == Impression("e2", "r1", "u1", ("i1", "i2"), TS)
    full = decode_impression(_with(MIN_IMPRESSION, variant="A", surface="home", items=[]))
    assert full == Impression("e2", "r1", "u1", (), TS, variant="A", surface="home")


def test_minimal_and_full_catalog() -> None:
    ev = decode_catalog(_raw(MIN_CATALOG))
    assert ev == CatalogItem("i1", TS)
    assert ev.in_stock is True and ev.deleted is False
    full = decode_catalog(
        _with(
            MIN_CATALOG,
            title="Phone",
            category="electronics.smartphone",
            brand="Acme",
            price=199.5,
            in_stock=False,
            deleted=True,
        )
    )
    assert full == CatalogItem(
        "i1", TS, "Phone", "electronics.smartphone", "Acme", 199.5, in_stock=False, deleted=True
    )


def test_unknown_extra_fields_are_ignored() -> None:
    assert decode_interaction(_with(MIN_INTERACTION, extra=[1, 2])).event_id == "e1"


def test_ts_bounds_are_inclusive() -> None:
    assert decode_interaction(_with(MIN_INTERACTION, ts=0)).ts == 0
    assert decode_interaction(_with(MIN_INTERACTION, ts=2**53 - 1)).ts == 2**53 - 1


def test_exactly_max_bytes_is_accepted() -> None:
    raw = _raw(MIN_INTERACTION)
    assert decode_interaction(raw, max_bytes=len(raw)).event_id == "e1"


# --- poison: every kind gives DecodeError with code and field -----------------------

POISON: list[tuple[str, Callable[[bytes | None], Any], bytes | None, str, str | None]] = [
    ("not json", decode_interaction, b"{not json", "not_json", None),
    ("empty bytes", decode_interaction, b"", "not_json", None),
    ("truncated", decode_interaction, _raw(MIN_INTERACTION)[:-1], "not_json", None),
    ("invalid utf-8", decode_interaction, b'{"event_id": "\xff\xfe"}', "not_json", None),
    ("lone surrogate", decode_interaction, b'{"event_id": "\\ud800"}', "not_json", None),
    (
        "NaN price",
        decode_interaction,
        _raw(MIN_INTERACTION)[:-1] + b',"price":NaN}',
        "not_json",
        None,
    ),
    (
        "infinite price",
        decode_interaction,
        _raw(MIN_INTERACTION)[:-1] + b',"price":1e400}',
        "not_json",
        None,
    ),
    ("json array", decode_interaction, b"[1, 2]", "not_object", None),
    ("json string", decode_catalog, b'"i1"', "not_object", None),
    ("json null", decode_impression, b"null", "not_object", None),
    ("tombstone", decode_interaction, None, "empty", None),
    ("tombstone catalog", decode_catalog, None, "empty", None),
    (
        "missing user",
        decode_interaction,
        _without(MIN_INTERACTION, "user_id"),
        "missing_field",
        "user_id",
    ),
    ("missing ts", decode_interaction, _without(MIN_INTERACTION, "ts"), "missing_field", "ts"),
    (
        "null item",
        decode_interaction,
        _with(MIN_INTERACTION, item_id=None),
        "missing_field",
        "item_id",
    ),
    (
        "missing items",
        decode_impression,
        _without(MIN_IMPRESSION, "items"),
        "missing_field",
        "items",
    ),
    ("missing catalog ts", decode_catalog, _without(MIN_CATALOG, "ts"), "missing_field", "ts"),
    ("ts as string", decode_interaction, _with(MIN_INTERACTION, ts=str(TS)), "wrong_type", "ts"),
    ("ts as float", decode_interaction, _with(MIN_INTERACTION, ts=1.5), "wrong_type", "ts"),
    ("ts as bool", decode_interaction, _with(MIN_INTERACTION, ts=True), "wrong_type", "ts"),
    (
        "bool user",
        decode_interaction,
        _with(MIN_INTERACTION, user_id=True),
        "wrong_type",
        "user_id",
    ),
    ("int item", decode_interaction, _with(MIN_INTERACTION, item_id=7), "wrong_type", "item_id"),
    ("type as int", decode_interaction, _with(MIN_INTERACTION, type=1), "wrong_type", "type"),
    (
        "bool quantity",
        decode_interaction,
        _with(MIN_INTERACTION, quantity=True),
        "wrong_type",
        "quantity",
    ),
    (
        "string price",
        decode_interaction,
        _with(MIN_INTERACTION, price="9.99"),
        "wrong_type",
        "price",
    ),
    (
        "list context",
        decode_interaction,
        _with(MIN_INTERACTION, context=[1]),
        "wrong_type",
        "context",
    ),
    (
        "items not a list",
        decode_impression,
        _with(MIN_IMPRESSION, items="i1"),
        "wrong_type",
        "items",
    ),
    ("in_stock as int", decode_catalog, _with(MIN_CATALOG, in_stock=1), "wrong_type", "in_stock"),
    (
        "unknown type",
        decode_interaction,
        _with(MIN_INTERACTION, type="like"),
        "unknown_type",
        "type",
    ),
    ("type case", decode_interaction, _with(MIN_INTERACTION, type="VIEW"), "unknown_type", "type"),
    ("version 2", decode_interaction, _with(MIN_INTERACTION, v=2), "unsupported_version", "v"),
    ("version as text", decode_catalog, _with(MIN_CATALOG, v="1"), "unsupported_version", "v"),
    (
        "newline id",
        decode_interaction,
        _with(MIN_INTERACTION, user_id="u1\n"),
        "bad_value",
        "user_id",
    ),
    ("tab id", decode_interaction, _with(MIN_INTERACTION, item_id="a\tb"), "bad_value", "item_id"),
    (
        "NUL id",
        decode_interaction,
        _with(MIN_INTERACTION, event_id="a\x00b"),
        "bad_value",
        "event_id",
    ),
    ("DEL id", decode_catalog, _with(MIN_CATALOG, item_id="a\x7f"), "bad_value", "item_id"),
    ("empty id", decode_interaction, _with(MIN_INTERACTION, user_id=""), "bad_value", "user_id"),
    (
        "long id",
        decode_interaction,
        _with(MIN_INTERACTION, user_id="x" * 257),
        "bad_value",
        "user_id",
    ),
    ("negative ts", decode_interaction, _with(MIN_INTERACTION, ts=-1), "bad_value", "ts"),
    ("ts too large", decode_interaction, _with(MIN_INTERACTION, ts=2**53), "bad_value", "ts"),
    (
        "negative price",
        decode_interaction,
        _with(MIN_INTERACTION, price=-0.01),
        "bad_value",
        "price",
    ),
    (
        "zero quantity",
        decode_interaction,
        _with(MIN_INTERACTION, quantity=0),
        "bad_value",
        "quantity",
    ),
    (
        "long variant",
        decode_interaction,
        _with(MIN_INTERACTION, variant="v" * 65),
        "bad_value",
        "variant",
    ),
    (
        "control char in listed id",
        decode_impression,
        _with(MIN_IMPRESSION, items=["ok", "a\nb"]),
        "bad_value",
        "items",
    ),
    (
        "too many items",
        decode_impression,
        _with(MIN_IMPRESSION, items=["i"] * 201),
        "bad_value",
        "items",
    ),
]


@pytest.mark.parametrize(
    ("decode", "raw", "code", "field"),
    [p[1:] for p in POISON],
    ids=[p[0] for p in POISON],
)
def test_poison_gives_decode_error(
    decode: Callable[[bytes | None], Any], raw: bytes | None, code: str, field: str | None
) -> None:
    err = _error(decode, raw)
    assert (err.code, err.field) == (code, field)
    assert isinstance(err, KapparecError)
    assert str(err).startswith(code)


def test_oversized_is_refused_before_parsing() -> None:
    raw = _raw(MIN_INTERACTION)
    err = _error(lambda r: decode_interaction(r, max_bytes=len(raw) - 1), raw)
    assert (err.code, err.field) == ("oversized", None)
    # Not even parsed: oversized garbage is "oversized", not "not_json".
    err = _error(decode_catalog, b"x" * (DEFAULT_MAX_BYTES + 1))
    assert err.code == "oversized"


def test_error_text_names_the_field() -> None:
    err = _error(decode_interaction, _with(MIN_INTERACTION, ts="soon"))
    assert str(err) == "wrong_type [ts]: expected integer epoch milliseconds, got str"


def test_first_missing_field_in_schema_order_is_reported() -> None:
    err = _error(decode_interaction, _raw({"item_id": "i1"}))
    assert (err.code, err.field) == ("missing_field", "event_id")


# --- encode -> decode ----------------------------------------------------------------


def test_interaction_round_trip() -> None:
    ev = Interaction(
        "e9", "add_to_cart", "u:1", "i\u00e9", TS, "s", "r", "A", 0.0, 3, {"k": [1, "x"]}
    )
    back = decode_interaction(encode(ev))
    assert back == ev
    assert back.context == ev.context  # context is not part of ==, so check it too


def test_encode_leaves_out_unset_fields() -> None:
    ev = Interaction("e1", "view", "u1", "i1", TS)
    assert orjson.loads(encode(ev)) == MIN_INTERACTION
    assert decode_interaction(encode(ev)) == ev


def test_impression_and_catalog_round_trip() -> None:
    imp = Impression("e2", "r1", "u1", ("b", "a", "c"), TS, "B", "email")
    assert decode_impression(encode(imp)) == imp
    item = CatalogItem("i1", TS, "T", "a.b", "Acme", 5.25, in_stock=False, deleted=True)
    assert decode_catalog(encode(item)) == item


# --- dead letters --------------------------------------------------------------------


def test_dead_letter_round_trip_keeps_binary_bytes() -> None:
    original = bytes(range(256)) + b"\xff\xfe\x00{"  # not UTF-8, not JSON
    dl = DeadLetter(
        reason="not_json",
        error="not_json: not valid UTF-8 JSON",
        source_topic="interactions",
        source_partition=3,
        source_offset=12_345,
        agent="ingest_interactions",
        dead_lettered_at=TS,
        original=original,
        key=b"\x00user\x80",
        field=None,
    )
    back = DeadLetter.from_bytes(dl.to_bytes())
    assert back == dl
    assert back.original == original


def test_dead_letter_round_trip_of_tombstone_and_field() -> None:
    dl = DeadLetter(
        "empty",
        "empty: tombstone",
        "catalog",
        0,
        0,
        "ingest_catalog",
        1,
        None,
        key=None,
        field="ts",
    )
    back = DeadLetter.from_bytes(dl.to_bytes())
    assert back == dl
    assert back.original is None and back.key is None and back.field == "ts"


def _letter(original: bytes | None, key: bytes | None, error: str = "oversized") -> DeadLetter:
    return DeadLetter("oversized", error, "interactions", 2, 9, "ingest", TS, original, key)


def test_a_dead_letter_too_large_to_send_describes_its_value_instead() -> None:
    # Accepted by a broker with the default 1 MB limit; base64 in an envelope, 1 MB.
    value = b'{"context": "' + b"x" * 760_000 + b'"}'
    raw, dropped = _letter(value, b"u1").encode()
    assert dropped == ["original"]
    assert len(raw) + len(letter_key(b"u1") or b"") <= MAX_LETTER_BYTES
    back = DeadLetter.from_bytes(raw)
    assert back.original is None and back.key == b"u1"  # the key still travels
    assert back.dropped == {
        "original": {"len": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    }


def test_a_dead_letter_under_the_limit_carries_everything() -> None:
    value = b"x" * 600_000  # 800 kB in base64: fits
    raw, dropped = _letter(value, b"u1").encode()
    assert dropped == [] and DeadLetter.from_bytes(raw).original == value


def test_a_huge_key_is_hashed_as_record_key_and_described() -> None:
    key = b"\x00" * 700_000
    raw, dropped = _letter(b"{}", key, error="key_mismatch: " + repr(key)).encode()
    assert dropped == ["key"]  # the largest goes: the small value still travels
    record_key = letter_key(key)
    assert record_key == hashlib.sha256(key).hexdigest().encode()
    assert len(raw) + len(record_key) <= MAX_LETTER_BYTES
    back = DeadLetter.from_bytes(raw)
    assert back.key is None and back.original == b"{}" and back.dropped is not None
    assert back.dropped["key"]["len"] == len(key)
    assert len(back.error) == MAX_ERROR_CHARS and back.error.endswith("\u2026")


def test_a_dead_letter_keeps_headers_in_order_and_the_timestamp() -> None:
    headers = (("trace", b"\x00abc"), ("empty", None), ("trace", b"second"))
    dl = DeadLetter(
        "not_json",
        "e",
        "interactions",
        0,
        1,
        "ingest",
        TS,
        b"{",
        b"k",
        None,
        headers,
        1_570_000_000_123,
    )
    back = DeadLetter.from_bytes(dl.to_bytes())
    assert back == dl and back.headers == headers and back.timestamp == 1_570_000_000_123


def test_headers_too_large_to_carry_are_described() -> None:
    headers = (("blob", b"h" * 700_000),)
    raw, dropped = (
        _letter(b"{}", b"u1")
        .__class__(
            "bad_value", "e", "interactions", 0, 1, "ingest", TS, b"{}", b"u1", None, headers
        )
        .encode()
    )
    assert dropped == ["headers"]
    back = DeadLetter.from_bytes(raw)
    assert back.headers == () and back.key == b"u1" and back.original == b"{}"
    assert back.dropped is not None and back.dropped["headers"]["len"] > 700_000


_blob = st.one_of(st.none(), st.binary(max_size=64), st.integers(0, 40_000).map(bytes))
_headers = st.lists(st.tuples(st.text(max_size=8), _blob), max_size=3).map(tuple)


# Limits from just above the largest record key kept whole (4,096 bytes) and an envelope.
@given(value=_blob, key=_blob, headers=_headers, limit=st.integers(6_000, 60_000))
@settings(max_examples=300, deadline=None)
def test_a_dead_letter_fits_its_limit_and_keeps_or_describes_every_field(
    value: bytes | None, key: bytes | None, headers: Any, limit: int
) -> None:
    letter = DeadLetter(
        "oversized", "e", "interactions", 0, 1, "ingest", TS, value, key, None, headers, TS
    )
    raw, dropped = letter.encode(limit)
    assert len(raw) + len(letter_key(key) or b"") <= limit
    back = DeadLetter.from_bytes(raw)
    carried = {
        "original": (back.original, value),
        "key": (back.key, key),
        "headers": (back.headers, headers),
    }
    for name, (got, sent) in carried.items():
        if name in dropped:
            assert back.dropped is not None and back.dropped[name]["len"] > 0
        else:
            assert got == sent, name
    if value is not None and "original" in dropped:
        assert back.dropped is not None
        assert back.dropped["original"]["sha256"] == hashlib.sha256(value).hexdigest()


def test_a_valid_key_is_its_own_record_key() -> None:
    assert letter_key(b"u" * 1024) == b"u" * 1024 and letter_key(None) is None


def test_dead_letter_of_a_real_decode_error() -> None:
    raw = b'{"event_id": "e1", "ts": "x"'
    err = _error(decode_interaction, raw)
    dl = DeadLetter(err.code, str(err), "interactions", 1, 7, "ingest", TS, raw, b"u1", err.field)
    doc = orjson.loads(dl.to_bytes())
    assert doc["reason"] == "not_json"
    assert doc["source"] == {"topic": "interactions", "partition": 1, "offset": 7}
    assert DeadLetter.from_bytes(dl.to_bytes()).original == raw
