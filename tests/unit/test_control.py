"""Which records on ``interactions`` are control messages."""

from __future__ import annotations

from types import SimpleNamespace

from agents.control import HEADER, RECATEGORIZE, REFRESH, control_of, refresh_request


def record(value: bytes | None, headers: object) -> SimpleNamespace:
    return SimpleNamespace(value=value, headers=headers)


def test_control_verb_from_either_header_form() -> None:
    assert control_of([(HEADER, REFRESH)]) == REFRESH
    assert control_of({HEADER: RECATEGORIZE}) == RECATEGORIZE
    assert control_of([("other", b"x")]) is None
    assert control_of(None) is None and control_of([]) is None


def test_a_null_header_value_is_no_verb() -> None:
    # Kafka allows null header values; aiokafka hands them over as None.
    assert control_of([(HEADER, None)]) is None


def test_a_refresh_request_needs_a_request_id_body() -> None:
    assert refresh_request(record(b"1795290895635-0a1b2c3d", [(HEADER, REFRESH)])) == (
        b"1795290895635-0a1b2c3d"
    )
    event = b'{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i", "ts": 1}'
    for value in (event, b"", None, b"1-0a1b2c3d\n", b"1-0a1b2c3d" + b"0" * 900_000):
        assert refresh_request(record(value, [(HEADER, REFRESH)])) is None, (
            value[:20] if value else value
        )
    assert refresh_request(record(b"1-0a1b2c3d", [(HEADER, None)])) is None
    assert refresh_request(record(b"1-0a1b2c3d", [(HEADER, RECATEGORIZE)])) is None
