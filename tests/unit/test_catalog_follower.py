"""How a worker's catalogue copy takes the changelog records its follower reads."""

import logging
from dataclasses import fields
from types import SimpleNamespace
from typing import Any

from faust.stores.memory import Store as MemoryStore

from agents.catalog_follower import (
    WARN_AFTER_S,
    apply_record,
    monotone_recovery,
    progress_level,
)
from streams.settings import Settings


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


class _Message:
    def __init__(self, value: Any, partition: int) -> None:
        self.value, self.partition = value, partition


class _Event:
    """A changelog event as Faust's recovery hands it to the store."""

    def __init__(self, key: str, value: dict[str, Any] | None, partition: int = 0) -> None:
        self.key, self.value = key, value
        self.message = _Message(None if value is None else b"raw", partition)


def _memory_table(data: dict[Any, Any]) -> Any:
    store = MemoryStore.__new__(MemoryStore)  # the real class, without an app around it
    store.data, store._key_partition = data, {}
    return SimpleNamespace(data=store)


def test_recovery_does_not_take_a_key_back_to_an_older_value() -> None:
    # The follower already applied a newer record than the ones recovery re-reads.
    table = _memory_table({"a": {"ts": 20, "category": "new"}})
    monotone_recovery(table)
    batch = [_Event("a", {"ts": 10, "category": "old"}), _Event("b", {"ts": 5}, partition=3)]
    table.data.apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert table.data.data == {"a": {"ts": 20, "category": "new"}, "b": {"ts": 5}}
    assert table.data._key_partition == {"a": 0, "b": 3}
    table.data.apply_changelog_batch([_Event("b", None)], lambda k: k, lambda v: v)
    assert table.data.data == {"a": {"ts": 20, "category": "new"}}
    assert table.data._key_partition == {"a": 0}


def test_a_long_wait_for_the_copy_is_reported_at_the_default_level() -> None:
    # Workers log at warning by default: a copy that takes long must show up there.
    assert progress_level(10.0) == logging.INFO
    assert progress_level(WARN_AFTER_S) == logging.WARNING
    (default_name,) = (f.default for f in fields(Settings) if f.name == "log_level")
    default = logging.getLevelName(str(default_name).upper())
    assert progress_level(WARN_AFTER_S) >= default > progress_level(0.0)
