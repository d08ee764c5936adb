"""The Redis key contract and published record encoding."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.blending import Rec
from streams.serving import RECORD_VERSION, Keys, decode, encode_list, encode_user, same_items

PROPERTY = settings(max_examples=500, deadline=None, database=None, derandomize=True)
KEYS = Keys("kapparec", 3)

KINDS: dict[str, Callable[[Keys, str], str]] = {
    "user": Keys.user,
    "bought": Keys.bought,
    "viewed": Keys.viewed,
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
@given(st.sampled_from(sorted(KINDS)), _ids, st.sampled_from(sorted(KINDS)), _ids)
def test_keys_are_equal_only_for_the_same_kind_and_id(k1: str, id1: str, k2: str, id2: str) -> None:
    same = KINDS[k1](KEYS, id1) == KINDS[k2](KEYS, id2)
    # trending() and popular() treat "" as "all categories": still one key per argument
    assert same == ((k1, id1) == (k2, id2))
    assert KINDS[k1](KEYS, id1).startswith(KEYS.prefix)


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
