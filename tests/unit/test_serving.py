"""The Redis key contract and published record encoding."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.ids import is_valid_id
from streams.blending import Rec
from streams.serving import (
    KINDS,
    RECORD_VERSION,
    Keys,
    decode,
    encode_list,
    encode_user,
    same_items,
)

PROPERTY = settings(max_examples=500, deadline=None, database=None, derandomize=True)
KEYS = Keys("kapparec", 3)

BUILDERS: dict[str, Callable[[Keys, str], str]] = {
    "user": Keys.user,
    "bought": Keys.bought,
    "viewed": Keys.viewed,
    "similar": Keys.similar,
    "item_meta": Keys.item_meta,
    "trending": Keys.trending,
    "popular": Keys.popular,
}


def test_key_names() -> None:
    assert KEYS.active == "kapparec:active"
    assert KEYS.prefix == "kapparec:v3:"
    assert KEYS.user("u1") == "kapparec:v3:user:u1"
    assert KEYS.bought("i1") == "kapparec:v3:bought:i1"
    assert KEYS.viewed("i1") == "kapparec:v3:viewed:i1"
    assert KEYS.similar("i1") == "kapparec:v3:similar:i1"
    assert KEYS.item("bought", "i1") == KEYS.bought("i1")
    assert KEYS.item_meta("i1") == "kapparec:v3:item:i1"
    assert KEYS.trending() == "kapparec:v3:trending:all"
    assert KEYS.trending("shoes") == "kapparec:v3:trending:cat:shoes"
    assert KEYS.popular() == "kapparec:v3:popular:all"
    assert KEYS.popular("shoes") == "kapparec:v3:popular:cat:shoes"
    assert KEYS.meta() == "kapparec:v3:meta"


def test_ids_with_colons_do_not_collide() -> None:
    keys = {
        KEYS.user("a:b"),
        KEYS.user("a"),
        KEYS.item_meta("a:b"),
        KEYS.bought("a:b"),
        KEYS.viewed("a:b"),
        KEYS.user("bought:a:b"),
        KEYS.item_meta("user:a:b"),
        KEYS.trending("all"),
        KEYS.trending(),
        KEYS.trending("cat:x"),
        KEYS.popular("cat:x"),
        KEYS.user("meta"),
        KEYS.meta(),
        KEYS.active,
    }
    assert len(keys) == 14
    assert KEYS.user("a:b").endswith(":a:b")  # the id is the last segment, unchanged


def test_unicode_ids_are_kept_verbatim() -> None:
    assert KEYS.user("ünïcødé") == "kapparec:v3:user:ünïcødé"
    # different normal forms are different ids, and different keys
    assert KEYS.user("e\u0301") != KEYS.user("\u00e9")


def test_versions_and_namespaces_do_not_share_keys() -> None:
    assert Keys("kapparec", 1).user("u") != Keys("kapparec", 2).user("u")
    assert not Keys("kapparec", 1).user("u").startswith(Keys("kapparec", 11).prefix)
    assert not Keys("kapparec", 11).user("u").startswith(Keys("kapparec", 1).prefix)
    assert Keys("shop", 1).active != Keys("kapparec", 1).active


_ids = st.lists(
    st.sampled_from(["a", ":", "b", "all", "cat", "user", "bought", "meta", "ü", "/"]), max_size=6
).map("".join)


@PROPERTY
@given(st.sampled_from(sorted(BUILDERS)), _ids, st.sampled_from(sorted(BUILDERS)), _ids)
def test_keys_are_equal_only_for_the_same_kind_and_id(k1: str, id1: str, k2: str, id2: str) -> None:
    same = BUILDERS[k1](KEYS, id1) == BUILDERS[k2](KEYS, id2)
    # trending() and popular() treat "" as "all categories": still one key per argument
    assert same == ((k1, id1) == (k2, id2))
    assert BUILDERS[k1](KEYS, id1).startswith(KEYS.prefix)


def test_encode_user_round_trip() -> None:
    recs = [Rec("X:1", 1.234567, "b:A"), Rec("ü", 0.5, "t")]
    raw = encode_user(recs, ["A", "B"], version=3, variant="B", computed_at_ms=10, event_ts=7)
    assert decode(raw) == {
        "v": RECORD_VERSION,
        "version": 3,
        "variant": "B",
        "computed_at": 10,
        "event_ts": 7,
        "items": [["X:1", 1.2346, "b:A"], ["ü", 0.5, "t"]],
        "recent": ["A", "B"],
    }


def test_encode_list_and_decode_none() -> None:
    raw = encode_list([["a", 1.5], ["b", 0.25]], computed_at_ms=2, event_ts=1)
    assert decode(raw) == {
        "v": RECORD_VERSION,
        "computed_at": 2,
        "event_ts": 1,
        "items": [["a", 1.5], ["b", 0.25]],
    }
    assert decode(None) is None


def test_same_items_ignores_timestamps() -> None:
    a = encode_list([["a", 1.0]], 1, 1)
    assert same_items(a, encode_list([["a", 1.0]], 99, 98))
    assert not same_items(a, encode_list([["a", 1.1]], 1, 1))
    assert not same_items(None, a)
    u1 = encode_user([Rec("x", 1.0, "t")], ["a"], 1, "A", 1, 1)
    assert same_items(u1, encode_user([Rec("x", 1.0, "t")], ["a"], 1, "A", 5, 5))
    assert not same_items(u1, encode_user([Rec("x", 1.0, "t:")], ["a"], 1, "A", 1, 1))


# --- hostile ids: the key is an injective function of (kind, id) -----------------------

_hostile_chars = st.one_of(
    st.sampled_from([":", "*", "?", "[", "]", "\\", "/", " ", "all", "cat:", "user:", "meta"]),
    # look-alikes and normal forms: Latin a, Cyrillic a, Latin alpha, e + combining acute, é,
    # sharp s and "ss", fullwidth s, dotted capital I and i + combining dot, an emoji
    st.sampled_from(
        [
            "a",
            "\u0430",
            "\u0251",
            "e\u0301",
            "\u00e9",
            "\u00df",
            "ss",
            "\uff53",
            "\u0130",
            "i\u0307",
            "\U0001f600",
        ]
    ),
    st.characters(),
)
HOSTILE_IDS = st.lists(_hostile_chars, min_size=1, max_size=12).map("".join).filter(is_valid_id)
ID_KINDS = {
    "user": Keys.user,
    "bought": Keys.bought,
    "viewed": Keys.viewed,
    "similar": Keys.similar,
    "item": Keys.item_meta,
    "trending": Keys.trending,
    "popular": Keys.popular,
}


@PROPERTY
@given(st.sampled_from(sorted(ID_KINDS)), HOSTILE_IDS)
def test_parse_inverts_every_key(kind: str, ident: str) -> None:
    key = ID_KINDS[kind](KEYS, ident)
    assert KEYS.parse(key) == (kind, ident)
    # Redis sees bytes: the UTF-8 form must exist and decode back to the same key
    assert key.encode("utf-8").decode("utf-8") == key


@PROPERTY
@given(
    st.sampled_from(sorted(ID_KINDS)),
    HOSTILE_IDS,
    st.sampled_from(sorted(ID_KINDS)),
    HOSTILE_IDS,
    st.integers(1, 12),
    st.integers(1, 12),
)
def test_distinct_kind_id_version_give_distinct_key_bytes(
    k1: str, id1: str, k2: str, id2: str, v1: int, v2: int
) -> None:
    a = ID_KINDS[k1](Keys("kapparec", v1), id1).encode()
    b = ID_KINDS[k2](Keys("kapparec", v2), id2).encode()
    assert (a == b) == ((k1, id1, v1) == (k2, id2, v2))


def test_kind_prefixes_are_prefix_free() -> None:
    heads = [k if k == "meta" else k + ":" for k in KINDS]
    for a in heads:
        for b in heads:
            assert a == b or not b.startswith(a)


@pytest.mark.parametrize(
    "key",
    [
        "other:v3:user:u",
        "kapparec:v3:",
        "kapparec:v3:user",
        "kapparec:v3:nope:x",
        "kapparec:v3:meta:x",
        "kapparec:v3:trending:cat:",
        "kapparec:v3:trending:x",
        "kapparec:active",
    ],
)
def test_parse_refuses_foreign_keys(key: str) -> None:
    with pytest.raises(ValueError):
        KEYS.parse(key)


def test_parse_meta_and_all() -> None:
    assert KEYS.parse(KEYS.meta()) == ("meta", "")
    assert KEYS.parse(KEYS.trending()) == ("trending", "")
    assert KEYS.parse(KEYS.popular("cat:x")) == ("popular", "cat:x")
