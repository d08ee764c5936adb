"""The id rule: what it refuses, what it keeps, and that its frozen table is Unicode's."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.ids import FORBIDDEN, FORBIDDEN_PATTERN, MAX_ID_LEN, id_problem, is_valid_id

PROPERTY = settings(max_examples=1000, deadline=None, database=None, derandomize=True)
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _forbidden(cp: int) -> bool:
    return any(a <= cp <= b for a, b in FORBIDDEN)


def test_table_covers_every_forbidden_category() -> None:
    missing = [
        f"U+{cp:04X}"
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in FORBIDDEN_CATEGORIES and not _forbidden(cp)
    ]
    assert missing == [], f"Unicode {unicodedata.unidata_version} has new forbidden characters"


def test_table_forbids_nothing_else() -> None:
    # Unassigned (Cn) code points are allowed in the table: they are format characters of a
    # later Unicode version, frozen in advance so replays validate alike on newer Pythons.
    wrong = [
        f"U+{cp:04X}"
        for a, b in FORBIDDEN
        for cp in range(a, b + 1)
        if unicodedata.category(chr(cp)) not in FORBIDDEN_CATEGORIES | {"Cn"}
    ]
    assert wrong == []


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * (MAX_ID_LEN + 1),
        "a\nb",
        "a\x00",
        "\x85",  # NEL, a C1 control
        "\u202eevil",  # right-to-left override
        "ad\u200bmin",  # zero-width space
        "\ufeffu1",  # byte-order mark
        "a\u2028b",  # line separator
        "\ud800",  # lone surrogate (only reachable from Python, never from JSON)
        "tag\U000e0041",  # tag character
    ],
)
def test_refused(bad: str) -> None:
    assert not is_valid_id(bad)
    assert id_problem(bad)


@pytest.mark.parametrize(
    "good",
    [
        "512483064",
        "a:b:c",
        "user:1",
        "*?[]",
        "ünïcødé",
        "e\u0301",  # combining accent: a mark, not a format character
        "\u0440\u0430\u0443\u0440\u0430l",  # Cyrillic look-alike of "paypal": another id
        "שלום",  # right-to-left script itself is fine; only the invisible controls are not
        "😀",
        "x" * MAX_ID_LEN,
        " spaced id ",
    ],
)
def test_kept(good: str) -> None:
    assert is_valid_id(good), id_problem(good)


def test_problem_names_the_code_point_and_position() -> None:
    assert id_problem("ab\u202ec") == "forbidden character U+202E at position 2"
    assert not is_valid_id(12)


@PROPERTY
@given(st.text(alphabet=st.characters(), min_size=1, max_size=40))
def test_rule_is_the_category_rule(text: str) -> None:
    by_category = all(unicodedata.category(c) not in FORBIDDEN_CATEGORIES for c in text)
    assert is_valid_id(text) == by_category
    assert (re.search(FORBIDDEN_PATTERN, text) is None) == by_category


@PROPERTY
@given(st.text(min_size=1, max_size=MAX_ID_LEN).filter(is_valid_id))
def test_valid_ids_encode_as_utf8_both_ways(text: str) -> None:
    assert text.encode("utf-8").decode("utf-8") == text
