"""What a source yields: schema events, or a :class:`SourceError` for a record it could not read."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import KapparecError
from schemas.events import CatalogItem, Impression, Interaction

# The UTF-8 byte order mark some tools (spreadsheet exports) put before the first line.
BOM = b"\xef\xbb\xbf"
SourceEvent = Interaction | Impression | CatalogItem


@dataclass(frozen=True, slots=True)
class SourceError:
    """A record a source rejected, kept (not dropped) so the loader can count it and say why.

    ``reason`` is a short stable code (``bad_time``, ``not_json``, ...) to count by;
    ``detail`` is the human-readable explanation; ``raw`` the original line.
    """

    line: int
    reason: str
    raw: str
    detail: str = ""
    source: str = ""


SourceRecord = SourceEvent | SourceError


class SourceFormatError(KapparecError, ValueError):
    """A whole input is unusable (missing file, wrong header); no event can be read from it."""
