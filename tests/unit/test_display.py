"""CLI rendering: hostile text is shown escaped, never interpreted by the terminal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.display import safe

PROPERTY = settings(max_examples=500, deadline=None, database=None, derandomize=True)


def test_escapes_controls_and_bidi() -> None:
    assert safe("a\x1b[31mb") == "a\\x1b[31mb"
    assert safe("\u202eevil") == "\\u202eevil"
    assert safe("x\U000e0041") == "x\\U000e0041"
    assert safe("plain id: 1") == "plain id: 1"
    assert safe("ünï 😀") == "ünï 😀"


@PROPERTY
@given(st.text())
def test_output_is_printable_and_distinct_inputs_stay_distinct(text: str) -> None:
    out = safe(text)
    assert out.isprintable()
    # printable input is shown unchanged, so what is shown identifies the id
    assert (out == text) == text.isprintable()
