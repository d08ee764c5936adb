"""The attribution agent's handler, on records as Faust hands them over (no broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson

from agents import codecs
from agents.experiments import MAX_OUTCOMES_MESSAGE_BYTES, AttributeOutcomes, register_codecs
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
        self.sizes: list[int] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> asyncio.Future[None]:
        self.sizes.append(len(value))
        for group in orjson.loads(value)["g"]:
            self.records.extend(group[2])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []

    async def send(
        self, topic: str, key: bytes, value: bytes | None, partition: int, *_: Any
    ) -> Any:
        self.sent.append((topic, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Table(dict):  # type: ignore[type-arg]
    """A table as agents.tables reads and writes it: its store, codecs and changelog."""

    key_serializer, value_serializer = codecs.STR, codecs.ORJSON

    def __init__(self) -> None:
        super().__init__()
        self.producer = _Producer()
        self.app = SimpleNamespace(producer=self.producer)
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "attribution-changelog")

    def recovered(self) -> _Table:
        """What a worker taking the partitions over reads back from the changelog."""
        table = _Table()
        for _, key, value, _ in self.producer.sent:
            if value is None:
                table.pop(key.decode(), None)
            else:
                table[key.decode()] = orjson.loads(value)
        return table

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
    states[str(p)] = JoinState(window_ms=1_000).header()
    h = _Handler(window_s=60, states=states)
    h.run(h.shown("r1", "u1", ["i1"], NOW), h.acted("u1", "i1", NOW + 30_000, rid="r1"))
    assert "clk" in h.kinds()
    assert states[str(p)]["w"] == 60_000  # and it is saved with it


def test_the_state_is_saved_per_user_in_records_of_bounded_size() -> None:
    """A busy partition holds thousands of open lists: saved as one record, it passed the
    producers' 1 MB limit and the worker could not save its state."""
    h = _Handler(window_s=1_800)
    items = [f"item-{n:04d}" for n in range(50)]
    users = [f"u{n}" for n in range(400) if partition_for(f"u{n}", PARTITIONS) == 0]
    for n in range(0, 3_000, 500):  # 3,000 lists shown within the window
        h.run(*(h.shown(f"r{m}", users[m % len(users)], items, NOW + m) for m in range(n, n + 500)))
    changelog = h.states.producer.sent
    assert max(len(value or b"") for *_, value, _ in changelog) < 200_000
    assert sum(len(value or b"") for *_, value, _ in changelog) > 1_000_000  # it was big
    assert max(h.outcomes.sizes) <= MAX_OUTCOMES_MESSAGE_BYTES


def test_a_worker_taking_a_partition_over_goes_on_from_its_records() -> None:
    """The same log with the state read back from the changelog halfway gives the same
    records as without; closed lists leave no user record behind."""
    log = []
    probe = _Handler()
    for n in range(40):
        user = f"u{n % 7}"
        log.append(probe.shown(f"r{n}", user, [f"i{n}", f"i{n + 1}"], NOW + n * 1_000))
        log.append(probe.acted(user, f"i{n}", NOW + n * 1_000 + 10 * (n % 3), rid=f"r{n}"))
        log.append(probe.acted(user, f"i{n + 1}", NOW + n * 1_000 + 500))  # no request id
    log.append(probe.shown("last", "u0", ["x"], NOW + 200_000))
    log.append(probe.acted("u0", "x", NOW + 200_000))

    straight = _Handler(window_s=5)
    straight.run(*log[:60])
    straight.run(*log[60:])

    first = _Handler(window_s=5)
    first.run(*log[:60])
    second = _Handler(window_s=5, states=first.states.recovered())
    second.run(*log[60:])
    taken_over = first.outcomes.records + second.outcomes.records

    assert sorted(map(repr, taken_over)) == sorted(map(repr, straight.outcomes.records))
    assert any(r[0] == "fin" for r in taken_over) and any(r[0] == "clk" for r in taken_over)
    # a record per user with a list open or an interaction waiting, and no other
    saved = {k for k in second.states.recovered() if "/" in k}
    live = second.handler.live
    expected = {
        f"{p}/{u}" for p, st in live.items() for u in [*st.by_user, *st.held, *st.early_count]
    }
    assert saved == expected and len(saved) < 7
