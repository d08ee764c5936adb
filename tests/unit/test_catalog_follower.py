"""How a worker's catalogue copy takes the changelog records its follower reads."""

from typing import Any

from agents.catalog_follower import apply_record


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
