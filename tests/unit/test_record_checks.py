"""A record's key, partition and event time, checked against where and when it arrived."""

from __future__ import annotations

import pytest

from agents.record_checks import check_not_ahead, check_partition
from schemas.codec import check_key
from schemas.errors import DecodeError
from streams.partitioning import partition_for

NOW = 1_796_000_000_000


def reason(fn, *args) -> str | None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except DecodeError as exc:
        return exc.code
    return None


def test_key() -> None:
    assert reason(check_key, b"u1", "u1", "user_id") is None
    assert reason(check_key, None, "u1", "user_id") == "key_mismatch"
    with pytest.raises(DecodeError) as info:
        check_key(b"\x00" * 300_000, "u1", "user_id")
    assert len(str(info.value)) < 400  # the key is quoted, not copied


def test_partition() -> None:
    owner = partition_for("u1", 4)
    assert reason(check_partition, owner, "u1", 4) is None
    assert reason(check_partition, (owner + 1) % 4, "u1", 4) == "wrong_partition"


@pytest.mark.parametrize(
    ("ts", "limit_s", "expected"),
    [
        (NOW, 86_400, None),
        (1_570_000_000_000, 86_400, None),  # the past is never refused
        (NOW + 86_400_000, 86_400, None),  # exactly the limit
        (NOW + 86_400_001, 86_400, "bad_value"),
        (2**53 - 1, 86_400, "bad_value"),
        (2**53 - 1, 0, None),  # 0: no limit
    ],
)
def test_not_ahead(ts: int, limit_s: int, expected: str | None) -> None:
    assert reason(check_not_ahead, ts, limit_s, NOW) == expected
