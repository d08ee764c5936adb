"""Simulated shoppers and export segments."""

from __future__ import annotations

import random

import pytest

from schemas.events import Impression, Interaction
from streams.export import csv_rows, parse_segment
from streams.partitioning import partition_for
from streams.simulation import Preference, Shopper, parse_rates

ROWS = [["x", 0.9, "b:a"], ["y", 0.5, "t"], ["z", 0.1, "c:shoes"]]


def test_parse_rates() -> None:
    assert parse_rates("A=0.1, B=0.25") == {"A": 0.1, "B": 0.25}
    assert parse_rates("") == {}
    for bad in ("A", "A=2", "=0.1"):
        with pytest.raises(ValueError):
            parse_rates(bad)


def test_impression_carries_request_variant_and_sources() -> None:
    events = Shopper(random.Random(0)).respond("u", ROWS, "B", "r1", 1000, Preference({"B": 1}))
    imp = events[0]
    assert isinstance(imp, Impression)
    assert (imp.request_id, imp.variant, imp.items) == ("r1", "B", ("x", "y", "z"))
    assert imp.sources == ("b:a", "t", "c:shoes")
    clicks = [e for e in events[1:] if isinstance(e, Interaction)]
    assert clicks[0].type == "click" and clicks[0].request_id == "r1" and clicks[0].ts > 1000
    assert all(e.item_id == clicks[0].item_id and e.variant == "B" for e in clicks)


def test_click_rate_follows_the_variant_preference() -> None:
    shopper = Shopper(random.Random(1))
    pref = Preference({"A": 0.1, "B": 0.4})
    for variant, p in (("A", 0.1), ("B", 0.4)):
        clicked = sum(
            len(shopper.respond("u", ROWS, variant, f"r{i}", i, pref)) > 1 for i in range(5000)
        )
        assert abs(clicked / 5000 - p) < 0.03


def test_source_pull_steers_the_clicked_slot() -> None:
    shopper = Shopper(random.Random(2))
    pref = Preference({"A": 1.0}, source_pull={"bought": 0.0, "category": 0.0}, cart=0)
    items = {shopper.respond("u", ROWS, "A", f"r{i}", i, pref)[1].item_id for i in range(200)}
    assert items == {"y"}


def test_segments() -> None:
    rec = {"variant": "B", "items": [["x", 1.0, "t"]], "version": 1, "computed_at": 5}
    assert parse_segment(None)("u", rec)
    assert parse_segment("variant=B")("u", rec) and not parse_segment("variant=A")("u", rec)
    users = [f"u{i}" for i in range(100)]
    shards = [{u for u in users if parse_segment(f"shard={i}/4")(u, rec)} for i in range(4)]
    assert set().union(*shards) == set(users) and sum(map(len, shards)) == len(users)
    assert shards[1] == {u for u in users if partition_for(u, 4) == 1}
    for bad in ("variant=", "shard=4/4", "shard=x", "colour=red"):
        with pytest.raises(ValueError):
            parse_segment(bad)
    assert list(csv_rows("u", rec)) == [("u", 1, "x", 1.0, "t", "B", 1, 5)]
