"""How a worker's catalogue copy takes the changelog records its follower reads."""

import asyncio
import logging
from dataclasses import fields
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest

from agents import codecs
from agents.catalog import CatalogNotSynced, IngestCatalog
from agents.catalog_follower import WARN_AFTER_S, CatalogCopy, apply_record, progress_level
from agents.tables import codecs_of
from schemas.codec import encode
from schemas.events import CatalogItem
from streams.partitioning import partition_for
from streams.serving import Keys
from streams.settings import Settings, load_settings
from streams.topics import build_topics

PARTITIONS = load_settings(env={}).partitions
codecs.register()


def test_a_record_replaces_an_older_value_and_a_new_key_is_added() -> None:
    store: dict[Any, Any] = {"a": {"ts": 1, "category": "x"}}
    apply_record(store, "a", {"ts": 2, "category": "y"})
    apply_record(store, "b", {"ts": 5})
    assert store == {"a": {"ts": 2, "category": "y"}, "b": {"ts": 5}}


def test_an_older_record_does_not_undo_the_newer_value_the_worker_wrote_itself() -> None:
    # The worker's own write is in its copy at once; the follower may still be reading
    # an older record of the same key that another worker wrote earlier.
    store: dict[Any, Any] = {"a": {"ts": 20, "category": "new"}}
    apply_record(store, "a", {"ts": 10, "category": "old"})
    assert store["a"] == {"ts": 20, "category": "new"}
    apply_record(store, "a", {"ts": 20, "category": "new"})  # its own record, come back
    assert store["a"] == {"ts": 20, "category": "new"}


def test_a_record_of_the_same_time_is_applied() -> None:
    store: dict[Any, Any] = {"a": {"ts": 7, "stock": 1}}
    apply_record(store, "a", {"ts": 7, "stock": 0})
    assert store["a"] == {"ts": 7, "stock": 0}


def test_a_tombstone_deletes_whatever_is_held() -> None:
    store: dict[Any, Any] = {"a": {"ts": 99}}
    apply_record(store, "a", None)
    apply_record(store, "missing", None)
    assert store == {}


def test_values_without_a_time_are_applied_in_log_order() -> None:
    store: dict[Any, Any] = {"a": {"name": "first"}}
    apply_record(store, "a", {"name": "second"})
    assert store["a"] == {"name": "second"}


def test_a_long_wait_for_the_copy_is_reported_at_the_default_level() -> None:
    # Workers log at warning by default: a copy that takes long must show up there.
    assert progress_level(10.0) == logging.INFO
    assert progress_level(WARN_AFTER_S) == logging.WARNING
    (default_name,) = (f.default for f in fields(Settings) if f.name == "log_level")
    default = logging.getLevelName(str(default_name).upper())
    assert progress_level(WARN_AFTER_S) >= default > progress_level(0.0)


class _Quiet:
    """Dead letters and Redis for a batch that writes nothing."""

    async def send_all(self, rejected: Any, agent: str) -> None:
        assert not rejected

    async def write(self, writes: Any) -> None:
        assert not writes


def _catalogue_batch(*items: CatalogItem) -> list[Any]:
    """Faust events of one catalogue partition, as the agent takes them."""
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                key=item.item_id.encode(),
                value=encode(item),
                partition=partition_for(item.item_id, PARTITIONS),
                offset=i,
                headers=[],
            )
        )
        for i, item in enumerate(items)
    ]


def _agent(copy: dict[str, Any], synced: Any, rebalances: list[int]) -> IngestCatalog:
    return IngestCatalog(
        load_settings(env={}),
        copy,
        _Quiet(),  # type: ignore[arg-type]
        _Quiet(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # nothing may be sent: see the tests
        None,  # type: ignore[arg-type]
        catalog_synced=synced,
        rebalances=lambda: rebalances[0],
    )


async def test_after_a_rebalance_records_are_compared_with_the_synced_copy() -> None:
    # Another worker wrote X at ts 200 just before the partition became this worker's;
    # the follower brings that record in when asked to sync. A late record of X at
    # ts 100 must then be turned away (nothing written or sent), not compared with the
    # copy as it was before the sync.
    copy: dict[str, Any] = {}
    rebalances, calls = [1], []

    async def catalog_synced() -> bool:
        calls.append(rebalances[0])
        copy["X"] = {"item_id": "X", "ts": 200, "category": "new"}
        return True

    agent = _agent(copy, catalog_synced, rebalances)
    await agent.handle_batch(_catalogue_batch(CatalogItem("X", 100, category="old")))
    assert copy == {"X": {"item_id": "X", "ts": 200, "category": "new"}}
    await agent.handle_batch([])
    assert calls == [1]  # once per rebalance
    rebalances[0] = 2
    await agent.handle_batch([])
    await agent.handle_batch([])
    assert calls == [1, 2]


async def test_a_sync_that_failed_stops_the_batch_and_is_tried_again() -> None:
    """Compared with a copy that lacks another worker's last writes, an older record
    would win over a newer one: the batch is not ingested (the worker stops and redoes
    it), and the sync is tried again."""
    answers, calls = [False, True], []
    copy: dict[str, Any] = {}

    async def catalog_synced() -> bool:
        calls.append(1)
        if answers[len(calls) - 1]:
            copy["X"] = {"item_id": "X", "ts": 200, "category": "new"}
        return answers[len(calls) - 1]

    agent = _agent(copy, catalog_synced, [1])
    late = _catalogue_batch(CatalogItem("X", 100, category="old"))
    with pytest.raises(CatalogNotSynced):
        await agent.handle_batch(late)
    assert copy == {}
    await agent.handle_batch(late)  # redone once the copy is in sync: turned away
    assert copy == {"X": {"item_id": "X", "ts": 200, "category": "new"}}
    await agent.handle_batch([])
    assert len(calls) == 2


class _Sent:
    """A topic that keeps what was sent to it."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Any, list[Any]]] = []

    async def send(self, key: bytes, value: Any, partition: int, **kw: Any) -> Any:
        self.sent.append((partition, value, kw.get("headers") or []))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Letters:
    def __init__(self) -> None:
        self.codes: list[str] = []

    async def send_all(self, rejected: Any, agent: str) -> None:
        self.codes += [error.code for _, error in rejected]


class _Redis:
    keys = Keys("t", 1)

    async def write(self, writes: Any) -> None:
        pass


class _Copy(dict):  # type: ignore[type-arg]
    """The catalogue copy as ingest writes it: a store, a changelog and its codecs."""

    key_serializer, value_serializer = codecs.STR, codecs.ORJSON

    def __init__(self) -> None:
        super().__init__()
        self.app = SimpleNamespace(producer=self)
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "catalog-changelog")

    @property
    def data(self) -> dict[str, Any]:
        return self

    async def send(self, *changelog_record: Any) -> Any:  # the producer of its changelog
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _ingest() -> tuple[IngestCatalog, _Sent, _Sent, _Letters]:
    deltas, vectors, letters = _Sent(), _Sent(), _Letters()
    agent = IngestCatalog(
        load_settings(env={}),
        _Copy(),
        letters,  # type: ignore[arg-type]
        _Redis(),  # type: ignore[arg-type]
        deltas,  # type: ignore[arg-type]
        vectors,  # type: ignore[arg-type]
    )
    return agent, deltas, vectors, letters


async def test_a_catalogue_record_on_another_partition_is_dead_lettered() -> None:
    """Records of one item are ordered only within its partition: a record on another
    one could land after a newer record and undo it (a deleted item back in every
    replica)."""
    agent, _, vectors, letters = _ingest()
    (event,) = _catalogue_batch(CatalogItem("X", 100, category="shoes"))
    event.message.partition = (event.message.partition + 1) % PARTITIONS
    await agent.handle_batch([event])
    assert letters.codes == ["wrong_partition"]
    assert vectors.sent == [] and "X" not in agent.catalog


async def test_clearing_an_items_category_moves_it_out_of_the_old_one() -> None:
    agent, deltas, _, _ = _ingest()
    await agent.handle_batch(_catalogue_batch(CatalogItem("X", 100, category="shoes")))
    await agent.handle_batch(_catalogue_batch(CatalogItem("X", 200, category=None)))
    moves = [orjson.loads(value) for _, value, headers in deltas.sent if headers]
    assert moves == [[["X", "shoes", None]], [["X", None, "shoes"]]]


def test_the_copy_logs_to_the_catalogue_changelog_that_is_created_up_front() -> None:
    # Faust no longer declares this changelog: the copy must name the topic the
    # registry creates, with its partition count, and write what the follower reads.
    codecs.register()
    settings = load_settings(env={})
    copy = CatalogCopy(faust.App(settings.app_id, broker="kafka://127.0.0.1:9"), settings)
    created = {t.name: t.partitions for t in build_topics(settings).changelogs}
    assert created[copy.changelog_topic.get_topic_name()] == copy.partitions
    key_codec, value_codec = codecs_of(copy)
    record = {"item_id": "X", "ts": 1, "category": "a/b"}
    assert key_codec.loads(key_codec.dumps("X")) == "X"
    assert value_codec.loads(value_codec.dumps(record)) == record
