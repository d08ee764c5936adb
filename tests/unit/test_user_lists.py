"""Users' lists reuse the parsed item lists of the previous build when their bytes match."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

import agents.user_lists as user_lists
from agents.loop_priority import LoopPriority
from agents.user_lists import UserLists
from schemas.events import Interaction
from streams.serving import Keys, decode_user, encode_list
from streams.settings import Settings
from streams.user_state import UserState
from tests.unit.urgent_batch import turns, urgent_batch

T0 = 1_700_000_000_000


class _Lists:
    """What a build reads: the serving copy's records by key (Redis in a worker)."""

    def __init__(self, settings: Settings) -> None:
        self.keys = Keys(settings.namespace, settings.version)
        self.records: dict[str, bytes] = {}

    async def mget(self, names: list[str]) -> list[bytes | None]:
        # fresh bytes objects, as every reply from Redis is
        return [bytes(bytearray(r)) if (r := self.records.get(n)) else None for n in names]


class _CountingOrjson:
    def __init__(self) -> None:
        self.loads_calls = 0

    def loads(self, raw: bytes) -> Any:
        self.loads_calls += 1
        return orjson.loads(raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(orjson, name)


def _user(*items: str) -> UserState:
    state = UserState()
    for n, item in enumerate(items):
        state.apply(Interaction(f"e{n}", "view", "u1", item, T0 + n), n, 20)
    return state


def _items(record: bytes) -> list[str]:
    return [row[0] for row in orjson.loads(record)["items"]]


def test_unchanged_lists_are_not_parsed_again_and_changed_ones_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(namespace="t", redis_url="redis://unused")
    source = _Lists(settings)
    counting = _CountingOrjson()
    monkeypatch.setattr(user_lists, "orjson", counting)
    lists = UserLists(source, settings, catalog=lambda item: None)  # type: ignore[arg-type]
    users = {"u1": _user("A", "B")}
    source.records[source.keys.viewed("B")] = encode_list([["x", 1.0], ["y", 0.5]], T0, T0)
    source.records[source.keys.viewed("A")] = encode_list([["z", 1.0]], T0, T0)

    first = asyncio.run(lists.build(users))
    assert counting.loads_calls == 2
    assert _items(first["u1"])[:3] == ["x", "z", "y"]  # z: from A, the older anchor

    again = asyncio.run(lists.build(users))
    assert counting.loads_calls == 2  # the same bytes: nothing parsed
    assert _items(again["u1"]) == _items(first["u1"])

    # B's list republished: y now leads it
    source.records[source.keys.viewed("B")] = encode_list([["y", 1.0], ["x", 0.5]], T0, T0)
    changed = asyncio.run(lists.build(users))
    assert counting.loads_calls == 3  # only the changed list
    assert _items(changed["u1"])[:3] == ["y", "z", "x"]


def test_the_parsed_lists_are_dropped_past_their_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(namespace="t", redis_url="redis://unused")
    source = _Lists(settings)
    counting = _CountingOrjson()
    monkeypatch.setattr(user_lists, "orjson", counting)
    monkeypatch.setattr(user_lists, "PARSED_KEPT", 1)
    lists = UserLists(source, settings, catalog=lambda item: None)  # type: ignore[arg-type]
    users = {"u1": _user("A", "B")}
    source.records[source.keys.viewed("B")] = encode_list([["x", 1.0]], T0, T0)
    source.records[source.keys.viewed("A")] = encode_list([["z", 1.0]], T0, T0)
    asyncio.run(lists.build(users))
    assert counting.loads_calls == 2
    asyncio.run(lists.build(users))  # two kept, over the cap of one: parsed again
    assert counting.loads_calls == 4


class _Serving(_Lists):
    """Also takes writes; the next read can be held until the test lets it through."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.written: dict[str, bytes] = {}
        self.gate: asyncio.Event | None = None

    async def mget(self, names: list[str]) -> list[bytes | None]:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return await super().mget(names)

    async def write(self, writes: list[tuple[str, bytes, int]]) -> None:
        for key, value, _ in writes:
            self.written[key] = value


def test_a_recheck_never_overwrites_a_list_published_while_it_was_built() -> None:
    settings = Settings(namespace="t", redis_url="redis://unused", settle_s=0.01)
    source = _Serving(settings)
    lists = UserLists(source, settings, catalog=lambda item: None)  # type: ignore[arg-type]
    key = source.keys.user("u1")
    source.records[source.keys.viewed("A")] = encode_list([["x", 1.0]], T0, T0)
    source.records[source.keys.viewed("B")] = encode_list([["y", 1.0]], T0, T0)
    state = _user("A")

    async def scenario() -> tuple[bytes, int]:
        await lists.publish({"u1": state})
        await asyncio.sleep(0.05)  # the user's re-check is due
        gate = source.gate = asyncio.Event()
        recheck = asyncio.create_task(lists.settle(lambda uid: state))
        await asyncio.sleep(0)  # the re-check planned its reads and waits for them
        # Meanwhile the user views B, A's list changes, and the new list is published.
        state.apply(Interaction("e9", "view", "u1", "B", T0 + 9), 9, 20)
        source.records[source.keys.viewed("A")] = encode_list([["w", 1.0]], T0, T0)
        await lists.publish({"u1": state})
        fresh = source.written[key]
        gate.set()
        return fresh, await recheck

    fresh, rewritten = asyncio.run(scenario())
    assert _items(fresh)[:2] == ["y", "w"]  # B, the newest anchor, first
    assert rewritten == 0
    assert source.written[key] == fresh  # not the re-check's list, planned before B


def test_a_recheck_steps_aside_between_its_steps_for_urgent_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(user_lists, "SETTLE_CHUNK", 4)
    settings = Settings(namespace="t", redis_url="redis://unused", settle_s=0.01)
    source = _Serving(settings)
    priority = LoopPriority(quantum_s=0.0)
    lists = UserLists(source, settings, catalog=lambda item: None, priority=priority)  # type: ignore[arg-type]
    source.records[source.keys.viewed("A")] = encode_list([["x", 1.0]], T0, T0)
    states = {f"u{n}": _user("A") for n in range(10)}

    async def scenario() -> tuple[int, int]:
        await lists.publish(states)
        source.records[source.keys.viewed("A")] = encode_list([["w", 1.0]], T0, T0)
        await asyncio.sleep(0.05)  # every re-check is due, and every list changed
        source.written.clear()
        async with urgent_batch(priority):
            recheck = asyncio.create_task(lists.settle(states.get))
            await turns()
            during = len(source.written)
        return during, await recheck

    during, total = asyncio.run(scenario())
    assert during == 4  # one step, then it waited for the batch
    assert total == 10
    assert all(_items(source.written[source.keys.user(u)])[0] == "w" for u in states)


def test_packed_records_hold_the_orjson_records_list() -> None:
    source = _Lists(Settings(namespace="t", redis_url="redis://unused"))
    source.records[source.keys.viewed("1")] = encode_list([["10", 1.0], ["11", 0.5]], T0, T0)
    source.records[source.keys.trending("shoes")] = encode_list([["12", 3.0]], T0, T0)
    source.records[source.keys.trending()] = encode_list([["13", 9.0]], T0, T0)
    catalog = {i: {"category": "shoes"} for i in ("1", "10", "11", "12", "13")}
    users = {"u1": _user("1")}
    built = {}
    for encoding in ("json", "packed"):
        settings = Settings(namespace="t", redis_url="redis://unused", user_list_encoding=encoding)
        lists = UserLists(source, settings, catalog=catalog.get)  # type: ignore[arg-type]
        built[encoding] = asyncio.run(lists.build(users))["u1"]
    assert built["json"][:1] == b"{" and built["packed"][:1] == b"\x02"
    plain, packed = decode_user(built["json"]), decode_user(built["packed"])
    assert [r[2] for r in plain["items"]] == ["v:1", "v:1", "c:shoes", "t"]
    assert [r[0] for r in packed["items"]] == [r[0] for r in plain["items"]]
    assert [r[2] for r in packed["items"]] == ["v:1", "v:1", "c", "t"]
    scores = [r[1] for r in plain["items"]]
    assert [r[1] for r in packed["items"]] == pytest.approx(scores, rel=0.023)
