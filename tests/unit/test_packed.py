"""The packed user record: the orjson record's list, decoded the same way, in 367 bytes."""

from __future__ import annotations

import math
import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.blending import Rec
from streams.packed import STEPS_PER_HALVING, pack_user, unpack_user
from streams.serving import decode_user, encode_user, same_items

RECENT = ["1004856", "12703015", "44600062"]
RECS = [
    Rec("1004750", 2.61834, "b:1004856"),
    Rec("1004788", 0.69412, "v:12703015"),
    Rec("3900821", 0.41, "c:electronics.smartphone"),
    Rec("1005007", 0.1206, "v:44600062"),
    Rec("5100816", 0.05, "t"),
]
CATEGORIES = {"3900821": "electronics.smartphone"}
STEP = 2 ** (1 / STEPS_PER_HALVING)  # one score code step: 4.4 %


def packed(recs: list[Rec] = RECS, recent: list[str] = RECENT) -> bytes:
    return encode_user(recs, recent, 3, "B", 1_795_290_895_635, 1_570_000_005_000, CATEGORIES.get)


def test_a_packed_record_decodes_to_the_orjson_records_fields() -> None:
    json = decode_user(encode_user(RECS, RECENT, 3, "B", 1_795_290_895_635, 1_570_000_005_000))
    raw = packed()
    assert raw[0] == 2 and len(raw) < len(orjson.dumps(json)) / 3
    got = decode_user(raw)
    assert {k: v for k, v in got.items() if k not in ("v", "items")} == {
        k: v for k, v in json.items() if k not in ("v", "items")
    }
    assert got["v"] == 2 and json["v"] == 1
    assert [row[0] for row in got["items"]] == [row[0] for row in json["items"]]
    # The category reason names no category: it is the item's own (see the reader).
    assert [row[2] for row in got["items"]] == ["b:1004856", "v:12703015", "c", "v:44600062", "t"]
    for (_, score, _), rec in zip(got["items"], RECS, strict=True):
        assert rec.score / STEP**0.5 - 1e-4 <= score <= rec.score * STEP**0.5 + 1e-4


def test_the_top_score_is_kept_and_zero_or_tiny_scores_decode_as_zero() -> None:
    recs = [Rec("1", 1.7234992, "t"), Rec("2", 0.0, "t"), Rec("3", 1e-9, "t"), Rec("4", -1, "t")]
    got = decode_user(packed(recs))["items"]
    assert got[0][1] == round(1.7234992, 4)
    assert [row[1] for row in got[1:]] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("recs", "recent"),
    [
        ([Rec("i123", 1.0, "t")], RECENT),  # not a number
        ([Rec("0123", 1.0, "t")], RECENT),  # a leading zero would not come back
        ([Rec("4294967296", 1.0, "t")], RECENT),  # 2**32
        ([Rec("١٢٣", 1.0, "t")], RECENT),  # Arabic-Indic digits
        ([Rec("1", 1.0, "t")], [*RECENT, "x"]),  # a recent item that is not a number
        ([Rec("1", 1.0, "b:999")], RECENT),  # an anchor not in recent
        ([Rec("1", 1.0, "c:books")], RECENT),  # not the item's own category
        ([Rec("1", 1.0, "s:1004856")], RECENT),  # no code for this kind
        ([Rec("1", math.nan, "t")], RECENT),
        ([Rec("1", -1e39, "t")], RECENT),  # beyond float32
        ([Rec(str(n), 1.0, "t") for n in range(256)], RECENT),  # more than 255 items
    ],
)
def test_lists_the_layout_cannot_hold_are_written_as_orjson(
    recs: list[Rec], recent: list[str]
) -> None:
    raw = packed(recs, recent)
    assert raw[:1] == b"{"
    assert decode_user(raw)["items"] == [r.to_list() for r in recs] or math.isnan(recs[0].score)


@pytest.mark.parametrize("first", [0, 2, 5, 9])
def test_first_decodes_only_the_leading_items(first: int) -> None:
    whole = decode_user(packed())
    assert decode_user(packed(), first) == {**whole, "items": whole["items"][:first]}
    json = encode_user(RECS, RECENT, 3, "B", 1, 2)
    assert decode_user(json, first) == orjson.loads(json)  # orjson is decoded whole


def test_without_a_category_lookup_the_record_is_orjson() -> None:
    raw = encode_user(RECS, RECENT, 3, "B", 1, 2)
    assert decode_user(raw) == orjson.loads(raw)


def test_same_items_compares_packed_records_by_their_lists() -> None:
    assert same_items(packed(), encode_user(RECS, RECENT, 3, "B", 5, 6, CATEGORIES.get))
    assert not same_items(packed(), packed(RECS[:-1]))


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x07abc", b"[1]", packed()[:-1], packed() + b"\x00"],
)
def test_bytes_that_are_no_user_record_are_refused(raw: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode_user(raw)


def test_a_reason_code_naming_a_missing_anchor_is_refused() -> None:
    raw = bytearray(pack_user([Rec("1", 1.0, "v:7")], ["7"], 1, "A", 1, 2, CATEGORIES.get) or b"")
    raw[-5] = 9  # the reason code, just before the one u32 anchor: anchor 4 of 1
    with pytest.raises(ValueError, match="names no recent item"):
        unpack_user(bytes(raw))


def test_a_fifty_item_list_of_eight_digit_ids_takes_367_bytes() -> None:
    recent = [str(10_000_000 + a) for a in range(10)]
    recs = [Rec(str(20_000_000 + n), 1 / (n + 1), f"v:{recent[n % 10]}") for n in range(50)]
    assert len(packed(recs, recent)) == 367


_ids = st.integers(0, 2**32 - 1).map(str)


@st.composite
def lists(draw: st.DrawFn) -> tuple[list[Rec], list[str], str, int, int, int]:
    recent = draw(st.lists(_ids, max_size=20, unique=True))
    reasons = st.sampled_from(["t", "c:cat"] + [f"{k}:{a}" for a in recent for k in "bv"])
    items = draw(st.lists(_ids, max_size=60, unique=True))
    scores = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    recs = [Rec(i, draw(scores), draw(reasons)) for i in items]
    variant = draw(st.text(max_size=20))
    return (
        recs,
        recent,
        variant,
        draw(st.integers(0, 2**16 - 1)),
        draw(st.integers(-(2**63), 2**63 - 1)),
        draw(st.integers(-(2**63), 2**63 - 1)),
    )


@given(lists())
def test_any_list_of_numeric_ids_round_trips_but_for_score_precision(
    case: tuple[list[Rec], list[str], str, int, int, int],
) -> None:
    recs, recent, variant, version, computed_at, event_ts = case
    json = decode_user(encode_user(recs, recent, version, variant, computed_at, event_ts))
    raw = encode_user(recs, recent, version, variant, computed_at, event_ts, {}.get)
    got = decode_user(raw)
    if any(r.reason == "c:cat" for r in recs):
        assert raw[:1] == b"{"  # no catalogue says "cat" is the item's category
        assert got == json
        return
    assert raw[:1] == b"\x02"
    assert {k: v for k, v in got.items() if k not in ("v", "items")} == {
        k: v for k, v in json.items() if k not in ("v", "items")
    }
    assert [(i, why) for i, _, why in got["items"]] == [(i, why) for i, _, why in json["items"]]
    top = max((r.score for r in recs), default=0.0)
    for (_, score, _), rec in zip(got["items"], recs, strict=True):
        floor = top * 2 ** (-254 / STEPS_PER_HALVING)
        if rec.score < floor / STEP**0.5:
            assert score <= floor * STEP + 1e-4
        else:
            # half a step either way, plus float32's rounding of the top and 4 decimals
            low = rec.score / STEP**0.5 * (1 - 1e-6) - 1e-4
            assert low <= score <= rec.score * STEP**0.5 * (1 + 1e-6) + 1e-4
