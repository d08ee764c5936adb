"""Catalogue records -> item-vectors topic -> every worker's HNSW replica -> similar lists.

Against the real broker and Redis. No interaction is ever produced: a new item must be
findable from its catalogue record alone.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from agents.metrics import ANN
from agents.producer import produce
from agents.publisher import connect
from agents.reader import Reader
from agents.replica_recall import live_replica_items, read_records, worker_gauges
from infra.workers import WorkerProcess
from schemas.events import CatalogItem
from streams.models.index import IndexParams
from streams.serving import Keys
from streams.settings import Settings
from tests.integration.test_pipeline import published, settings, workers  # noqa: F401

T0 = 1_570_000_000_000
SHOES = ["Trail runner", "Road runner shoe", "Racing flat", "Marathon trainer"]
PHONES = ["Galaxy phone", "Pixel handset", "Pocket mobile", "Flip cell"]
BOOKS = ["Moby Dick", "War and Peace", "Great Expectations"]


def item(item_id: str, title: str, ts: int = T0, **extra: Any) -> CatalogItem:
    group = item_id[0]
    fields: dict[str, Any] = {
        "s": {"category": "apparel.shoes.running", "brand": "acme", "price": 80.0},
        "p": {"category": "electronics.smartphone", "brand": "zphone", "price": 600.0},
        "b": {"category": "books.fiction", "brand": "penguin", "price": 12.0},
    }[group]
    return CatalogItem(item_id, ts, title=title, **{**fields, **extra})


def catalogue() -> list[CatalogItem]:
    return [
        *(item(f"s{i}", t) for i, t in enumerate(SHOES)),
        *(item(f"p{i}", t) for i, t in enumerate(PHONES)),
        *(item(f"b{i}", t) for i, t in enumerate(BOOKS)),
    ]


def wait_for(what: str, check: Callable[[], bool], running: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + 120
    while not check():
        for w in running:
            assert w.alive, f"worker died:\n{w.tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def lists(s: Settings, ids: list[str]) -> dict[str, list[list[Any]] | None]:
    keys = Keys(s.namespace, s.version)
    return {i: published(s, keys.similar(i)) for i in ids}


def names(rows: list[list[Any]] | None, n: int) -> set[str]:
    return {r[0] for r in (rows or [])[:n]}


def test_catalogue_records_become_similar_lists_in_every_replica(
    settings: Settings,  # noqa: F811
    workers: Callable[..., WorkerProcess],  # noqa: F811
) -> None:
    assert produce(settings, catalogue(), progress=False).ok
    w1 = workers("w1")
    ids = [c.item_id for c in catalogue()]
    wait_for("every similar list", lambda: None not in lists(settings, ids).values(), [w1])

    got = lists(settings, ids)
    # the catalogue record is kept as long as its version; the lists age out
    keys = Keys(settings.namespace, settings.version)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert [r.ttl(keys.item_meta(i)) for i in ids] == [-1] * len(ids)
        assert 0 < r.ttl(keys.similar("s0")) <= settings.item_ttl_s
    finally:
        r.close()
    for group, size in (("s", 4), ("p", 4), ("b", 3)):
        members = {i for i in ids if i[0] == group}
        for i in members:  # the nearest items are those of the same category and brand
            assert names(got[i], size - 1) == members - {i}, (i, got[i])
            assert i not in names(got[i], 100)

    # `kapparec similar ITEM --relation similar` reads the list, reason s:<item>
    result = asyncio.run(_read(settings, "s0"))
    assert result.sources == ["similar"]
    assert {r[0] for r in result.items[:3]} == {"s1", "s2", "s3"}
    assert {r[2] for r in result.items} == {"s:s0"}

    # a new item is findable at once and enters its neighbours' lists; a deleted one leaves
    assert produce(
        settings,
        [item("s9", "Trail runner pro", T0 + 1), item("s1", SHOES[1], T0 + 2, deleted=True)],
        progress=False,
    ).ok
    wait_for(
        "s9 in, s1 out",
        lambda: (
            published(settings, Keys(settings.namespace, settings.version).similar("s1")) is None
            and "s9" in names(lists(settings, ["s0"])["s0"], 3)
        ),
        [w1],
    )
    live = [i for i in [*ids, "s9"] if i != "s1"]
    got = lists(settings, live)
    assert names(got["s9"], 3) == {"s0", "s2", "s3"}
    assert all("s1" not in names(rows, 100) for rows in got.values())

    # a second worker, started later, rebuilds the same replica from the topic alone
    w1.stop(grace_s=10.0)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        r.delete(*[Keys(settings.namespace, settings.version).similar(i) for i in live])
    finally:
        r.close()
    w2 = workers("w2")
    wait_for("lists rewritten by w2", lambda: None not in lists(settings, live).values(), [w2])
    again = lists(settings, live)
    for i in live:
        assert [row[0] for row in again[i] or []] == [row[0] for row in got[i] or []], i
        assert [row[1] for row in again[i] or []] == pytest.approx(
            [row[1] for row in got[i] or []], abs=1e-4
        )
    # and a third one beside it holds as many items as there are live ones
    w3 = workers("w3")
    wait_for("w3's replica", lambda: live_replica_items(settings).get("w3") == len(live), [w2, w3])
    assert live_replica_items(settings)["w2"] == len(live)
    # the topic holds a record per catalogue record; tombstones included
    assert [rec.vector is None for rec, _ in read_records(settings) if rec.item_id == "s1"][-1]


async def _read(s: Settings, item_id: str) -> Any:
    client = connect(s.redis_url, retries=2)
    try:
        return await Reader(client, s.namespace, s.version).similar(item_id, 10, "similar")
    finally:
        await client.aclose()


def test_a_worker_calibrates_its_replica_and_reports_ef_and_recall(
    settings: Settings,  # noqa: F811
    workers: Callable[..., WorkerProcess],  # noqa: F811
) -> None:
    # A catalogue large enough for the replica to measure its own graph (2,000 items),
    # where records often share a vector, as shops' catalogues do: 2,400 records over
    # 10 x 6 x 3 x 3 = 540 combinations of category, brand, price and title.
    rng = random.Random(7)
    records = [
        CatalogItem(
            f"x{n}",
            T0 + n,
            title=rng.choice(["trail", "road pro", "classic eco"]),
            category=f"cat{rng.randrange(10)}.sub",
            brand=f"brand{rng.randrange(6)}",
            price=float(rng.choice([12, 80, 600])),
        )
        for n in range(2_400)
    ]
    assert produce(settings, records, progress=False).ok
    w1 = workers("w1")
    # The gauges appear at the first calibration (2,000 items), possibly before the
    # replica holds every record: wait for both.
    wait_for(
        "the whole replica and its calibration gauges",
        lambda: (
            live_replica_items(settings).get("w1") == 2_400
            and "w1" in worker_gauges(settings, ANN, "recall")
        ),
        [w1],
    )
    assert live_replica_items(settings)["w1"] == 2_400
    # Equal vectors count as interchangeable hits: the breadth stays below its maximum,
    # where the recall target is what calibration guarantees.
    assert worker_gauges(settings, ANN, "ef")["w1"] < IndexParams().ef_max
    assert worker_gauges(settings, ANN, "recall")["w1"] >= 0.95
