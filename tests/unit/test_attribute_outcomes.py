"""The attribution agent's handler, on records as Faust hands them over (no broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson

from agents import codecs
from agents.experiments import JOIN_STATE, AttributeOutcomes, register_codecs
from schemas.errors import DecodeError
from streams.attribution import JoinState
from streams.partitioning import partition_for
from streams.settings import Settings

IMPRESSIONS, INTERACTIONS = "impressions", "interactions"
PARTITIONS = 4
NOW = int(time.time() * 1000)
codecs.register()
register_codecs()


class _Outcomes:
    """The outcomes topic: keeps what was sent."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> asyncio.Future[None]:
        for group in orjson.loads(value)["g"]:
            self.records.extend(group[2])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, *_: Any) -> Any:
        self.sent.append((topic, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Table(dict):  # type: ignore[type-arg]
    """A table as agents.tables reads and writes it: its store, codecs and changelog."""

    key_serializer, value_serializer = codecs.STR, JOIN_STATE

    def __init__(self) -> None:
        super().__init__()
        self.app = SimpleNamespace(producer=_Producer())
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "attribution-changelog")

    @property
    def data(self) -> dict[str, Any]:
        return self


class _DeadLetters:
    def __init__(self) -> None:
        self.reasons: list[tuple[bytes, str]] = []

    async def send_all(self, rejected: Sequence[tuple[Any, DecodeError]], agent: str) -> None:
        self.reasons += [(msg.value, error.code) for msg, error in rejected]


class _Handler:
    """The handler, its fakes, and an offset counter per topic and partition."""

    def __init__(self, window_s: float = 60.0, states: _Table | None = None) -> None:
        self.settings = Settings(
            namespace="t", redis_url="redis://unused", partitions=PARTITIONS, ab_window_s=window_s
        )
        self.outcomes = _Outcomes()
        self.dead = _DeadLetters()
        self.states = _Table() if states is None else states
        self.handler = AttributeOutcomes(
            self.settings,
            IMPRESSIONS,
            self.states,
            self.outcomes,  # type: ignore[arg-type]
            self.dead,  # type: ignore[arg-type]
        )
        self.offsets: dict[tuple[str, int], int] = {}

    def _record(self, topic: str, user: str, body: dict[str, Any], partition: int | None) -> Any:
        p = partition_for(user, PARTITIONS) if partition is None else partition
        offset = self.offsets[(topic, p)] = self.offsets.get((topic, p), -1) + 1
        msg = SimpleNamespace(
            topic=topic, partition=p, offset=offset, key=user.encode(),
            value=orjson.dumps(body), headers=None,
        )  # fmt: skip
        return SimpleNamespace(message=msg)

    def shown(
        self, rid: str, user: str, items: list[str], ts: int, partition: int | None = None
    ) -> Any:
        body = {"event_id": f"e-{rid}", "request_id": rid, "user_id": user, "items": items,
                "ts": ts, "variant": "A", "sources": ["t"] * len(items)}  # fmt: skip
        return self._record(IMPRESSIONS, user, body, partition)

    def acted(self, user: str, item: str, ts: int, type_: str = "click", rid: str = "") -> Any:
        body = {"event_id": f"e-{user}-{item}-{ts}", "user_id": user, "item_id": item,
                "type": type_, "ts": ts, **({"request_id": rid} if rid else {})}  # fmt: skip
        return self._record(INTERACTIONS, user, body, None)

    def run(self, *events: Any) -> None:
        asyncio.run(self.handler.handle(list(events)))

    def kinds(self) -> list[str]:
        return [r[0] for r in self.outcomes.records]


def test_a_click_within_the_window_is_attributed_to_the_list_shown() -> None:
    h = _Handler()
    h.run(h.shown("r1", "u1", ["i1", "i2"], NOW), h.acted("u1", "i2", NOW + 5_000, rid="r1"))
    assert h.outcomes.records == [
        ["imp", "A", ["trending", "trending"]],
        ["clk", "A", "trending", True],
    ]


def test_an_impression_dated_far_ahead_is_dead_lettered_and_later_lists_still_close() -> None:
    h = _Handler(window_s=60)
    ahead = h.shown("r-future", "u1", ["i1"], NOW + 30 * 86_400_000)
    h.run(ahead, h.shown("r1", "u2", ["i2"], NOW), h.acted("u3", "i9", NOW + 61_000))
    h.run(h.shown("r2", "u4", ["i3"], NOW + 62_000))
    assert h.dead.reasons == [(ahead.message.value, "bad_value")]
    assert ["fin", "A", 0, NOW] in h.outcomes.records  # r1 closed: the watermark passed it


def test_an_impression_on_another_users_partition_is_dead_lettered() -> None:
    h = _Handler()
    wrong = (partition_for("u1", PARTITIONS) + 1) % PARTITIONS
    misplaced = h.shown("r1", "u1", ["i1"], NOW, partition=wrong)
    h.run(misplaced)
    assert h.dead.reasons == [(misplaced.message.value, "wrong_partition")]
    assert h.outcomes.records == []


def test_a_restored_join_state_takes_the_window_configured_now() -> None:
    # The state was saved while the window was 1 s; the worker restarts with 60 s.
    states = _Table()
    p = partition_for("u1", PARTITIONS)
    states[str(p)] = JoinState(window_ms=1_000)
    h = _Handler(window_s=60, states=states)
    h.run(h.shown("r1", "u1", ["i1"], NOW), h.acted("u1", "i1", NOW + 30_000, rid="r1"))
    assert "clk" in h.kinds()
    assert states[str(p)].window_ms == 60_000  # and it is saved with it
