"""Event sources: files and generators turned into schema events, in order, with no I/O to Kafka.

Every reader yields schema events (:class:`~schemas.events.Interaction`,
:class:`~schemas.events.Impression`, :class:`~schemas.events.CatalogItem`) and, for input it
cannot read, a :class:`SourceError` instead of raising, so a loader can count what it rejected
and why. Catalog records always come before the first interaction that mentions their item.
"""

from streams.sources.formats import FORMATS, detect_format, read_events
from streams.sources.jsonl import read_jsonl, to_jsonl, write_jsonl
from streams.sources.movielens import read_movielens
from streams.sources.records import SourceError, SourceEvent, SourceFormatError, SourceRecord
from streams.sources.rees46 import read_rees46
from streams.sources.synthetic import synthetic

__all__ = [
    "FORMATS",
    "SourceError",
    "SourceEvent",
    "SourceFormatError",
    "SourceRecord",
    "detect_format",
    "read_events",
    "read_jsonl",
    "read_movielens",
    "read_rees46",
    "synthetic",
    "to_jsonl",
    "write_jsonl",
]
