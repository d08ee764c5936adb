"""Export of published user lists: segment filters and the JSONL / CSV row formats.

A segment picks users by their record or id: ``variant=B`` (the variant stamped on the
list) or ``shard=I/N`` (users whose murmur2 hash mod N is I, the same hash Kafka
partitions by, so N parallel exports split the users without overlap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from streams.partitioning import partition_for

CSV_HEADER = ("user_id", "rank", "item_id", "score", "reason", "variant", "version", "computed_at")
Segment = Callable[[str, Mapping[str, Any]], bool]


def parse_segment(raw: str | None) -> Segment:
    """The filter a ``--segment`` expression names; ``None`` keeps every user."""
    if not raw:
        return lambda _u, _r: True
    name, sep, value = raw.partition("=")
    if sep and name == "variant" and value:
        return lambda _u, r: r.get("variant") == value
    if sep and name == "shard":
        index, slash, count = value.partition("/")
        if slash and index.isdigit() and count.isdigit() and int(index) < int(count):
            i, n = int(index), int(count)
            return lambda u, _r: partition_for(u, n) == i
    raise ValueError(f"segment {raw!r}: expected variant=NAME or shard=I/N (0 <= I < N)")


def jsonl_line(user_id: str, record: Mapping[str, Any]) -> bytes:
    """One user per line: the record with its ``user_id``."""
    return orjson.dumps({"user_id": user_id, **record}) + b"\n"


def csv_rows(user_id: str, record: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    """One row per recommended item, in rank order (see :data:`CSV_HEADER`)."""
    for rank, row in enumerate(record.get("items", []), start=1):
        yield (
            user_id, rank, row[0], row[1], row[2] if len(row) > 2 else "",
            record.get("variant", ""), record.get("version", ""), record.get("computed_at", ""),
        )  # fmt: skip
