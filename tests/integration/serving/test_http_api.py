"""The HTTP read API against a real Redis: fallback chain, validation, OpenAPI, metrics."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis
import redis.asyncio as aioredis
import yarl
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import Recorder, read_snapshot
from agents.reader import Reader
from agents.telemetry import alerts_key
from streams.blending import Rec
from streams.serving import Keys, encode_user
from streams.settings import Settings
from tests.integration.serving.conftest import Api
from tests.integration.serving.support import (
    AB_REPORT,
    ALERTS,
    get,
    seed_ab_and_alerts,
    seed_lists,
    seed_worker_metrics,
)


@pytest.fixture
def seeded(serving_settings: Settings) -> Settings:
    """Lists of version 1 in the test's namespace."""
    with redis.Redis.from_url(serving_settings.redis_url) as client:
        seed_lists(client, serving_settings.namespace)
    return serving_settings


async def test_openapi_document_is_valid(api: Api) -> None:
    document = await get(api, "/openapi.json")
    validate(document)
    assert {"/recommendations/{user_id}", "/items/{item_id}/also-bought", "/metrics"} <= set(
        document["paths"]
    )


async def test_user_list_then_recent_items_then_trending(api: Api, seeded: Settings) -> None:
    body = await get(api, "/recommendations/u1?k=8")
    assert body["user_id"] == "u1"
    assert body["items"] == [
        ["i2", 0.9, "b:i1"],
        ["i3", 0.7, "v:i1"],
        ["i4", 0.2, "c:shoes"],
        ["i5", 2.0, "b:i1"],  # i2 is listed already
        ["i6", 1.5, "v:i1"],
        ["i7", 1.0, "b:i9"],
        ["i8", 9.0, "t"],  # i1 is the user's own recent item, never recommended
        ["i10", 6.0, "t"],
    ]
    assert body["sources"] == ["user", "recent", "trending"]
    assert (body["version"], body["variant"], body["event_ts"]) == (1, "B", 1_570_000_000_000)
    assert len((await get(api, "/recommendations/u1?k=2"))["items"]) == 2


async def test_same_chain_as_the_read_helper(api: Api, seeded: Settings) -> None:
    client = aioredis.Redis.from_url(seeded.redis_url)
    try:
        reader = Reader(client, seeded.namespace)
        for user, k, recent in (("u1", 2, []), ("new-user", 6, ["i1", "i9"]), ("nobody", 3, [])):
            url = f"/recommendations/{user}?k={k}" + (
                f"&recent={','.join(recent)}" if recent else ""
            )
            expected = (await reader.recommendations(user, k, recent)).to_dict()
            assert await get(api, url) == {"user_id": user, **expected}
        expected = (await reader.similar("i1", 4)).to_dict()
        assert await get(api, "/items/i1/also-bought?k=4") == {"item_id": "i1", **expected}
    finally:
        await client.aclose()


async def test_a_packed_user_record_is_served_as_the_orjson_one(api: Api, seeded: Settings) -> None:
    recs = [Rec("101", 2.5, "b:900"), Rec("102", 0.75, "c:bags"), Rec("103", 0.1, "t")]
    cats = {"102": "bags"}
    keys = Keys(seeded.namespace, 1)
    with redis.Redis.from_url(seeded.redis_url) as client:
        client.set(keys.item_meta("102"), orjson.dumps({"item_id": "102", "category": "bags"}))
        for user, lookup in (("json", None), ("packed", cats.get)):
            client.set(keys.user(user), encode_user(recs, ["900"], 1, "B", 5, 7, lookup))
        assert client.get(keys.user("packed"))[:1] == b"\x02"  # type: ignore[index]
    plain = await get(api, "/recommendations/json?k=3")
    packed = await get(api, "/recommendations/packed?k=3")
    assert plain["items"] == [["101", 2.5, "b:900"], ["102", 0.75, "c:bags"], ["103", 0.1, "t"]]
    assert [row[::2] for row in packed["items"]] == [row[::2] for row in plain["items"]]
    assert [row[1] for row in packed["items"]] == pytest.approx([2.5, 0.75, 0.1], rel=0.025)
    assert {k: v for k, v in packed.items() if k not in ("user_id", "items")} == {
        k: v for k, v in plain.items() if k not in ("user_id", "items")
    }


async def test_packed_category_names_are_cached_for_a_while(
    seeded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keys(seeded.namespace, 1)
    recs = [Rec("201", 1.0, "c:bags"), Rec("202", 0.5, "c:hats")]
    client = aioredis.Redis.from_url(seeded.redis_url)
    try:
        await client.set(keys.user("u"), encode_user(recs, [], 1, "A", 1, 2, lambda i: None))
        assert (await client.get(keys.user("u")))[:1] == b"{"  # not the items' categories
        cats = {"201": "bags", "202": "hats"}
        await client.set(keys.user("u"), encode_user(recs, [], 1, "A", 1, 2, cats.get))
        for item, cat in cats.items():
            await client.set(keys.item_meta(item), orjson.dumps({"category": cat}))
        monkeypatch.setattr("agents.reader.CATEGORY_CACHE_S", 0.3)
        reader = Reader(client, seeded.namespace)
        named = [["201", 1.0, "c:bags"], ["202", 0.5, "c:hats"]]
        assert (await reader.recommendations("u", 2)).items == named
        await client.delete(keys.item_meta("201"))
        assert (await reader.recommendations("u", 2)).items == named  # from the cache
        await asyncio.sleep(0.4)  # expired: read again, and the record is gone
        assert (await reader.recommendations("u", 2)).items == [["201", 1.0, "c"], named[1]]
    finally:
        await client.aclose()


async def test_unknown_user_with_session_items_falls_back_to_their_lists(
    api: Api, seeded: Settings
) -> None:
    body = await get(api, "/recommendations/new-user?k=4&recent=i1")
    assert body["items"] == [
        ["i2", 3.0, "b:i1"],
        ["i5", 2.0, "b:i1"],
        ["i6", 1.5, "v:i1"],
        ["i8", 9.0, "t"],
    ]
    assert body["sources"] == ["recent", "trending"]


async def test_also_bought_then_also_viewed_then_trending(api: Api, seeded: Settings) -> None:
    body = await get(api, "/items/i1/also-bought?k=5")
    assert [row[0] for row in body["items"]] == ["i2", "i5", "i6", "i8", "i10"]
    assert body["sources"] == ["bought", "viewed", "trending"]
    assert (await get(api, "/items/i1/also-viewed?k=1"))["items"] == [["i6", 1.5, "v:i1"]]


async def test_similar_items_then_trending(api: Api, seeded: Settings) -> None:
    # i10 is new: no one bought or viewed it, but its catalogue record gave it a vector.
    body = await get(api, "/items/i10/similar?k=3")
    assert body["items"] == [["i4", 0.98, "s:i10"], ["i3", 0.9, "s:i10"], ["i8", 9.0, "t"]]
    assert body["sources"] == ["similar", "trending"]
    also_bought = await get(api, "/items/i10/also-bought?k=1")
    assert also_bought["items"] == [["i4", 0.98, "s:i10"]]  # the fallback reaches it too


async def test_ids_with_slashes_colons_and_unicode(api: Api, seeded: Settings) -> None:
    body = await get(api, "/recommendations/a%2Fb:c%C3%A9?k=1")
    assert body["user_id"] == "a/b:cé"
    assert body["sources"] == ["trending"]
    # U+FFFD sent as its UTF-8 bytes is an id like any other.
    replacement = await get(api, "/recommendations/%EF%BF%BD?k=1&category=&recent=%C3%A9")
    assert replacement["user_id"] == "\ufffd"


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/recommendations/u1?k=0", "k"),
        ("/recommendations/u1?k=101", "k"),
        ("/recommendations/u1?k=ten", "k"),
        ("/recommendations/u1?k=-1", "k"),
        ("/recommendations/u1?k=" + "0" * 4400 + "5", "k"),  # int() refuses > 4,300 digits
        ("/recommendations/u1%0A", "user_id"),  # a trailing newline is part of the id
        ("/items/i1%0A/also-bought", "item_id"),
        ("/recommendations/" + "x" * 257, "user_id"),
        ("/recommendations/bad%01id", "user_id"),
        ("/recommendations/zero%E2%80%8Bwidth", "user_id"),  # U+200B, refused in events too
        ("/items/rtl%E2%80%AEid/also-bought", "item_id"),  # U+202E
        ("/recommendations/u1?recent=" + ",".join(f"i{i}" for i in range(21)), "recent"),
        ("/recommendations/u1?recent=i1,%7F", "recent"),
        ("/items/" + "y" * 300 + "/also-bought", "item_id"),
        ("/items/i1/also-bought?k=1000", "k"),
        # Not UTF-8 once decoded: the server would read both as the id "\ufffd".
        ("/recommendations/u%FF", "user_id"),
        ("/items/i%FE/also-bought", "item_id"),
        ("/api/users/%C3", "user_id"),
        ("/recommendations/u1?recent=i1,i%FF", "recent"),
        ("/trending?category=%FE", "category"),
    ],
)
async def test_bad_input_is_422_naming_the_parameter(
    api: Api, seeded: Settings, url: str, parameter: str
) -> None:
    body = await get(api, url, status=422)
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter
    assert parameter in body["detail"]


async def test_no_active_version_is_503(api: Api) -> None:
    body = await get(api, "/recommendations/u1", status=503)
    assert body["error"] == "no_active_version"
    assert (await get(api, "/api/overview"))["version"] is None


async def test_health(api: Api, seeded: Settings) -> None:
    assert await get(api, "/health") == {"status": "ok", "version": 1}


async def test_workers_figures_are_summed_in_redis(seeded: Settings) -> None:
    await seed_worker_metrics(seeded.redis_url, seeded.namespace)
    client = aioredis.Redis.from_url(seeded.redis_url)
    try:
        snap = await read_snapshot(client, seeded.namespace)
        rec = Recorder()  # a recorder that was never bound sends nothing
        assert await rec.flush(client) == 0
    finally:
        await client.aclose()
    events = {labels: v for labels, v in snap.series.items() if labels[0] == "kapparec_events"}
    assert events[("kapparec_events", "", ("1", "view"))] == 42
    assert events[("kapparec_events", "", ("1", "purchase"))] == 2


async def test_metrics_in_prometheus_format(api: Api, seeded: Settings) -> None:
    await seed_worker_metrics(seeded.redis_url, seeded.namespace)
    with redis.Redis.from_url(seeded.redis_url) as client:
        seed_ab_and_alerts(client, seeded.namespace)
    await get(api, "/recommendations/u1")
    text = await get(api, "/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("kapparec_events_total", (("type", "view"), ("version", "1")))] == 42
    assert (
        samples[
            (
                "kapparec_dead_letters_total",
                (("reason", "not_json"), ("topic", "interactions"), ("version", "1")),
            )
        ]
        == 2
    )
    assert samples[("kapparec_freshness_seconds_bucket", (("le", "0.5"), ("version", "1")))] == 2
    assert samples[("kapparec_freshness_seconds_count", (("version", "1"),))] == 4
    assert samples[("kapparec_ab_ctr", (("variant", "B"),))] == 0.05
    assert samples[("kapparec_ab_ctr_low", (("variant", "A"),))] == 0.0366
    assert samples[("kapparec_ab_p_value", (("method", "two-proportion z-test"),))] == 0.0003
    assert samples[("kapparec_alerts", ())] == 2
    assert samples[("kapparec_active_version", ())] == 1
    route = (("route", "/recommendations/{user_id}"), ("status", "200"))
    assert samples[("kapparec_http_requests_total", route)] >= 1


async def test_overview_renders_what_is_there(api: Api, seeded: Settings) -> None:
    empty = await get(api, "/api/overview")
    assert (empty["ab"], empty["alerts"], empty["events"]) == (None, [], {})
    assert empty["freshness_s"]["p50"] is None
    await seed_worker_metrics(seeded.redis_url, seeded.namespace)
    with redis.Redis.from_url(seeded.redis_url) as client:
        seed_ab_and_alerts(client, seeded.namespace)
        client.lpush(alerts_key(seeded.namespace, 1), b"not json")
    full = await get(api, "/api/overview")
    assert full["ab"] == AB_REPORT
    assert full["alerts"] == ALERTS  # the entry that is not JSON is skipped
    assert full["events"] == {"purchase": 2, "view": 42}
    assert full["dead_letters"] == {"not_json": 2}
    assert full["freshness_s"]["count"] == 4
    assert 0.25 <= full["freshness_s"]["p50"] <= 0.5
    assert full["lag"] is None  # no broker configured


async def test_user_explorer(api: Api, seeded: Settings) -> None:
    body = await get(api, "/api/users/u1?k=4")
    assert body["recent"] == ["i1", "i9"]
    assert [row[2] for row in body["list"]["items"]] == ["b:i1", "v:i1", "c:shoes", "b:i1"]
    assert body["catalog"]["i1"]["title"] == "Item number 1"
    assert set(body["catalog"]) == {"i1", "i9", "i2", "i3", "i4", "i5"}


async def test_unknown_route_is_json_404(api: Api) -> None:
    async with api.session.get(api.url("/nope")) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"


async def test_other_methods_are_405_with_an_allow_header(api: Api, seeded: Settings) -> None:
    async with api.session.post(yarl.URL(api.url("/recommendations/u1"), encoded=True)) as resp:
        assert resp.status == 405
        assert resp.headers.get("Allow") == "GET"
        assert (await resp.json())["error"] == "method_not_allowed"
