"""Shared by the HTTP API and dashboard tests: seeded lists and metrics, OpenAPI checks."""

from __future__ import annotations

import re
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
import yarl
from jsonschema import Draft202012Validator

from agents.metrics import EVENTS, FRESHNESS, Recorder
from agents.openapi import spec
from agents.telemetry import ab_key, alerts_key
from streams.serving import Keys

T0 = 1_570_000_000_000

AB_REPORT = {
    "variants": {
        "A": {
            "impressions": 12000,
            "clicks": 480,
            "conversions": 61,
            "ctr": 0.04,
            "ctr_ci": [0.0366, 0.0436],
        },
        "B": {
            "impressions": 11800,
            "clicks": 590,
            "conversions": 70,
            "ctr": 0.05,
            "ctr_ci": [0.0462, 0.0540],
        },
    },
    "test": {
        "method": "two-proportion z-test",
        "p_value": 0.0003,
        "significant": True,
        "leader": "B",
    },
    "by_source": {
        "also_bought": {"impressions": 9000, "clicks": 450, "ctr": 0.05},
        "trending": {"impressions": 14800, "clicks": 620, "ctr": 0.0419},
    },
    "updated_ms": T0,
}
ALERTS = [
    {"ts_ms": T0 + 2000, "detector": "ADWIN", "variant": "B", "message": "CTR of B dropped"},
    {"ts_ms": T0 + 1000, "detector": "PageHinkley", "variant": "A", "message": "loss drift on A"},
]


def seed_lists(client: redis.Redis, namespace: str) -> Keys:
    """Version 1 active; user u1 with a list, items with neighbour lists, trending, catalogue."""
    keys = Keys(namespace, 1)
    user = {
        "v": 1, "version": 1, "variant": "B", "computed_at": T0 + 500, "event_ts": T0,
        "items": [["i2", 0.9, "b:i1"], ["i3", 0.7, "v:i1"], ["i4", 0.2, "c:shoes"]],
        "recent": ["i1", "i9"],
    }  # fmt: skip
    client.set(keys.active, "1")
    client.set(keys.user("u1"), orjson.dumps(user))
    client.set(keys.bought("i1"), orjson.dumps({"v": 1, "items": [["i2", 3.0], ["i5", 2.0]]}))
    client.set(keys.viewed("i1"), orjson.dumps({"v": 1, "items": [["i6", 1.5], ["i2", 1.0]]}))
    client.set(keys.bought("i9"), orjson.dumps({"v": 1, "items": [["i7", 1.0]]}))
    client.set(keys.similar("i10"), orjson.dumps({"v": 1, "items": [["i4", 0.98], ["i3", 0.9]]}))
    trending = {"v": 1, "items": [["i8", 9.0], ["i2", 8.0], ["i1", 7.0], ["i10", 6.0]]}
    client.set(keys.trending(), orjson.dumps(trending))
    for i in range(1, 11):
        meta = {"item_id": f"i{i}", "title": f"Item number {i}", "category": "shoes"}
        client.set(keys.item_meta(f"i{i}"), orjson.dumps(meta))
    return keys


def seed_ab_and_alerts(client: redis.Redis, namespace: str, version: int = 1) -> None:
    """The A/B report and drift alerts of ``version``, as the experiment agents write them."""
    client.set(ab_key(namespace, version), orjson.dumps(AB_REPORT))
    client.rpush(alerts_key(namespace, version), *[orjson.dumps(a) for a in ALERTS])


async def seed_worker_metrics(redis_url: str, namespace: str) -> None:
    """Two workers' figures, flushed the way workers flush them."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for worker, views in (("w1", 30), ("w2", 12)):
            rec = Recorder()
            rec.bind(namespace, 1, worker)
            for _ in range(views):
                rec.event("view")
            rec.event("purchase")
            rec.dead_letter("interactions", "not_json")
            rec.observe(FRESHNESS, 0.4)
            rec.observe(FRESHNESS, 3.0)
            await rec.flush(client)
    finally:
        await client.aclose()
    assert EVENTS.name == "kapparec_events"


_TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "(.+)", path) + "$"), path) for path in spec()["paths"]
]


def check_response(path: str, status: int, content_type: str, body: bytes) -> Any:
    """Check a response against the OpenAPI document; return the decoded JSON (or text)."""
    matches = [t for rx, t in _TEMPLATES if rx.match(path)]
    assert matches, f"{path} is not described in the OpenAPI document"
    # The most specific template: /items/{id}/also-bought before a bare {id} catch-all.
    template = max(matches, key=lambda t: len(re.sub(r"\{[^}]+\}", "", t)))
    responses = spec()["paths"][template]["get"]["responses"]
    assert str(status) in responses, f"{template} does not document status {status}"
    media = content_type.split(";")[0].strip()
    content = responses[str(status)]["content"]
    assert media in content, f"{template} {status} is not documented as {media}"
    if media != "application/json":
        return body.decode()
    data = orjson.loads(body)
    schema = {**content[media]["schema"], "components": spec()["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=str)
    assert not errors, f"{template} {status}: {errors[0].message}"
    return data


async def get(api: Any, path: str, status: int = 200) -> Any:
    """GET ``path``, check the status and the OpenAPI description; return the body."""
    async with api.session.get(yarl.URL(api.url(path), encoded=True)) as response:
        body = await response.read()
        assert response.status == status, body
        return check_response(response.url.raw_path, response.status, response.content_type, body)
