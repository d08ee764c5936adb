"""A refresh request is acted on once per partition a worker owned, not once per process."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agents.control import HEADER, REFRESH
from agents.ingest import IngestInteractions
from streams.settings import Settings
from streams.user_state import UserState

REQUEST = b"1700000000000-0badf00d"


class _Users(dict):  # type: ignore[type-arg]
    """A table as the handler reads it: ``get`` and the store's ``data``."""

    @property
    def data(self) -> dict[str, Any]:
        return self


class _Lists:
    def __init__(self) -> None:
        self.refreshed: list[str] = []

    async def publish(self, users: dict[str, UserState]) -> None:
        pass

    async def refresh_all(self, users: _Users) -> None:
        self.refreshed += sorted(users.data)


class _DeadLetters:
    async def send_all(self, rejected: list[Any], agent: str) -> None:
        pass


def _worker(users: _Users, owned: set[int] | None) -> IngestInteractions:
    """A worker; without ``owned``, it counts only the partition a request arrives on."""
    worker = IngestInteractions(
        Settings(partitions=2),
        users,
        None,  # type: ignore[arg-type]
        _DeadLetters(),  # type: ignore[arg-type]
        _Lists(),  # type: ignore[arg-type]
    )
    if owned is not None:
        worker.owned = lambda: set(owned)
    return worker


def _request(partition: int, offset: int) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="interactions",
        partition=partition,
        offset=offset,
        key=None,
        value=REQUEST,
        headers=[(HEADER, REFRESH)],
    )
    return SimpleNamespace(message=message)


def _refreshed(worker: IngestInteractions) -> list[str]:
    return worker.user_lists.refreshed  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("knows_owned", [True, False])
def test_a_request_redone_on_a_partition_taken_over_refreshes_its_users(
    knows_owned: bool,
) -> None:
    owned = {1}
    # W1 owned p0 and died before refreshing it; W2 refreshed p1, then took p0 over.
    w2 = _worker(_Users(u1a=UserState()), owned if knows_owned else None)

    async def scenario() -> None:
        await w2.handle([_request(1, 100)])
        owned.add(0)
        w2.users.update(u0a=UserState(), u0b=UserState())
        await w2.handle([_request(0, 200)])

    asyncio.run(scenario())
    assert _refreshed(w2) == ["u1a", "u0a", "u0b", "u1a"]


def test_a_request_on_each_partition_owned_refreshes_once() -> None:
    owned = {0, 1}
    worker = _worker(_Users(u0a=UserState(), u1a=UserState()), owned)

    async def scenario() -> None:
        await worker.handle([_request(0, 100)])
        await worker.handle([_request(1, 100)])

    asyncio.run(scenario())
    assert _refreshed(worker) == ["u0a", "u1a"]
