"""Framing of the load generator: HTTP responses and RESP replies split correctly."""

from __future__ import annotations

import pytest

from agents.loadgen import LoadResult, _http_response, _resp_reply, http_get, resp_command


def test_http_response_needs_the_whole_body() -> None:
    one = b"HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Length: 5\r\n\r\nhello"
    assert _http_response(bytearray(one[:-1])) is None
    assert _http_response(bytearray(one + b"HTTP/1.1 422")) == (len(one), "200")


def test_http_response_without_length_is_refused() -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        _http_response(bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))


@pytest.mark.parametrize(
    ("reply", "kind"),
    [(b"$3\r\nabc\r\n", "ok"), (b"$-1\r\n", "nil"), (b"+OK\r\n", "ok"), (b"-ERR x\r\n", "error")],
)
def test_resp_replies(reply: bytes, kind: str) -> None:
    assert _resp_reply(bytearray(reply + b"$1\r\n")) == (len(reply), kind)
    assert _resp_reply(bytearray(reply[:-1])) is None


def test_requests_are_encoded() -> None:
    assert resp_command("GET", "k:é") == b"*2\r\n$3\r\nGET\r\n$4\r\nk:\xc3\xa9\r\n"
    assert http_get("h", 1, "/x").startswith(b"GET /x HTTP/1.1\r\nHost: h:1\r\n")


def test_percentiles_are_nearest_rank() -> None:
    result = LoadResult(1.0, 1.0, 4, 4, 4.0, 4.0, [4.0, 1.0, 3.0, 2.0], {}, 0)  # type: ignore[arg-type]
    assert (result.percentile(50), result.percentile(99), result.percentile(0)) == (2.0, 4.0, 1.0)
