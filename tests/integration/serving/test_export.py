"""``kapparec export`` against a real Redis: packed records come out as orjson ones do."""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from agents.export import export_lists
from streams.blending import Rec
from streams.serving import Keys, encode_user
from streams.settings import Settings

RECS = [Rec("101", 2.5, "b:900"), Rec("102", 0.75, "c:bags"), Rec("103", 0.1, "c:hats")]
CATEGORIES = {"102": "bags", "103": "hats"}


def test_packed_and_orjson_records_export_alike(serving_settings: Settings, tmp_path: Path) -> None:
    keys = Keys(serving_settings.namespace, 1)
    with redis.Redis.from_url(serving_settings.redis_url) as client:
        client.set(keys.active, "1")
        for item, category in CATEGORIES.items():
            client.set(keys.item_meta(item), orjson.dumps({"category": category}))
        client.set(keys.user("plain"), encode_user(RECS, ["900"], 1, "A", 5, 7))
        client.set(keys.user("packed"), encode_user(RECS, ["900"], 1, "A", 5, 7, CATEGORIES.get))
        assert client.get(keys.user("packed"))[:1] == b"\x02"  # type: ignore[index]
    out = tmp_path / "all.jsonl"
    assert export_lists(serving_settings, out, "jsonl", progress=False) == (2, 2)
    lines = {x["user_id"]: x for x in map(orjson.loads, out.read_bytes().splitlines())}
    assert [row[2] for row in lines["plain"]["items"]] == ["b:900", "c:bags", "c:hats"]
    assert [row[2] for row in lines["packed"]["items"]] == ["b:900", "c:bags", "c:hats"]
    assert [row[0] for row in lines["packed"]["items"]] == ["101", "102", "103"]
