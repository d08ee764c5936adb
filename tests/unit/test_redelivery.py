"""Selection, --since parsing, fix-up hooks and the summary of a dead-letter replay."""

from __future__ import annotations

import pytest

from schemas.codec import check_record
from schemas.dead_letter import DeadLetter
from schemas.errors import DecodeError
from streams.redelivery import ReplaySummary, Selection, SelectionError, load_fix, parse_since

NOW = 1_700_000_000_000


def letter(reason: str = "not_json", at: int = NOW, offset: int = 5) -> DeadLetter:
    return DeadLetter(reason, "e", "interactions", 1, offset, "ingest", at, b"x", b"k")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1690000000000", 1_690_000_000_000),
        ("30m", NOW - 30 * 60_000),
        ("2h", NOW - 2 * 3_600_000),
        ("1.5d", NOW - 129_600_000),
        ("2023-11-14T22:13:20+00:00", NOW),
        ("2023-11-14T22:13:20", NOW),  # naive means UTC
    ],
)
def test_parse_since(text: str, expected: int) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "5w", "", "-3h"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(SelectionError, match="--since"):
        parse_since(text, NOW)


def test_selection_by_reason_and_time() -> None:
    assert Selection().matches(letter())
    assert Selection("not_json").matches(letter())
    assert not Selection("oversized").matches(letter())
    assert Selection(since_ms=NOW).matches(letter(at=NOW))
    assert not Selection(since_ms=NOW + 1).matches(letter(at=NOW))


def test_each_source_record_once_per_run() -> None:
    summary = ReplaySummary()
    assert summary.first_time(letter(offset=5))
    assert not summary.first_time(letter(offset=5, reason="oversized"))
    assert summary.first_time(letter(offset=6))
    assert summary.duplicates == 1


def test_summary_text() -> None:
    summary = ReplaySummary(dry_run=True, read=4, filtered_out=1, duplicates=1)
    summary.sent["key_mismatch"] = 1
    summary.still_invalid["not_json"] = 1
    text = str(summary)
    assert text.splitlines()[0] == "read 4 dead letter(s); would send 1"
    assert "still invalid, not sent: 1" in text and "  not_json: 1" in text
    assert summary.ok
    summary.failed["boom"] = 1
    assert not summary.ok


def test_load_fix() -> None:
    assert load_fix("os.path:join") is not None
    for bad in ("os.path", "no_such_module_x:f", "os.path:no_such_attr", "os:sep"):
        with pytest.raises(SelectionError, match="--fix"):
            load_fix(bad)


def test_check_record_applies_the_key_rule() -> None:
    value = b'{"event_id":"e","type":"view","user_id":"u","item_id":"i","ts":1}'
    check_record("interaction", b"u", value, 1000)
    with pytest.raises(DecodeError) as info:
        check_record("interaction", b"v", value, 1000)
    assert info.value.code == "key_mismatch"
    with pytest.raises(DecodeError) as info:
        check_record("catalog_item", b"j", b'{"item_id":"i","ts":1}', 1000)
    assert info.value.code == "key_mismatch"
    check_record("catalog_item", b"i", b'{"item_id":"i","ts":1}', 1000)


def test_a_letter_without_its_original_bytes_is_not_sent_back() -> None:
    from agents.redelivery import _to_resend

    whole = letter(offset=7)
    big = b"x" * 800_000
    described = DeadLetter.from_bytes(
        DeadLetter("oversized", "e", "interactions", 1, 8, "ingest", NOW, big, b"k").to_bytes()
    )
    summary = ReplaySummary()
    assert _to_resend(whole, Selection(), None, summary) == (b"k", b"x")
    assert _to_resend(described, Selection(), None, summary) is None
    assert summary.not_carried == 1
    assert "original bytes not carried" in str(summary)
