"""The id rule: which strings may be a user, item, event or category id.

An id becomes a Redis key segment, a Kafka message key, a log field and a CLI cell, so
it must not be able to break any of them. An id is 1-256 Unicode characters, none of
which is in a *forbidden* range:

- control characters (C0, DEL, C1), which break log lines, terminals and CSV exports;
- format characters (bidi overrides and marks, zero-width joiners and spaces, the BOM,
  soft hyphen, tag characters), which make two different ids print the same or reorder
  the text around them;
- surrogates (U+D800-U+DFFF), which cannot be encoded as UTF-8 and so cannot be a
  Redis key or a Kafka key;
- line and paragraph separators (U+2028, U+2029).

The ranges are exactly Unicode's general categories Cc, Cf, Cs, Zl and Zp (Unicode 14,
plus the format characters Unicode 15 added), frozen here so that a newer Python cannot
change which events are valid: the same log must validate the same way on replay.

Ids are never normalized: ``"é"`` (one code point) and ``"é"`` (two) are different
ids, as are look-alikes from different scripts. Normalizing would merge ids the
producer keeps apart, i.e. create the very collisions this rule exists to prevent.
"""

from __future__ import annotations

import re

MAX_ID_LEN = 256

# Inclusive code point ranges of the forbidden characters.
FORBIDDEN: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)


def _atom(cp: int) -> str:
    # BMP code points as regex escapes (Python's re and ECMA-262 read \uXXXX alike, and a
    # lone surrogate can only be written this way); others as the literal character.
    return f"\\u{cp:04x}" if cp <= 0xFFFF else chr(cp)


def forbidden_class() -> str:
    """The forbidden characters as the body of a regex character class."""
    return "".join(_atom(a) if a == b else f"{_atom(a)}-{_atom(b)}" for a, b in FORBIDDEN)


FORBIDDEN_PATTERN = f"[{forbidden_class()}]"
_FORBIDDEN_RE = re.compile(FORBIDDEN_PATTERN)

ID_RULE = (
    f"1-{MAX_ID_LEN} characters, none of them a control, format (bidi, zero-width, BOM), "
    "surrogate or line/paragraph separator character"
)


def id_problem(value: str, min_len: int = 1, max_len: int = MAX_ID_LEN) -> str | None:
    """Why ``value`` is not a valid id, or ``None`` when it is."""
    if not min_len <= len(value) <= max_len:
        return f"must be {min_len}-{max_len} characters long, got {len(value)}"
    bad = _FORBIDDEN_RE.search(value)
    if bad is not None:
        return f"forbidden character U+{ord(bad.group()):04X} at position {bad.start()}"
    return None


def is_valid_id(value: object) -> bool:
    """True when ``value`` is a string that obeys the id rule."""
    return isinstance(value, str) and id_problem(value) is None
