"""``kapparec export``: the current lists of all (or a segment of) users, to JSONL or CSV.

It SCANs the user keys of the active version (no KEYS, so Redis keeps serving) and
fetches records with one MGET per SCAN page. Packed records are written with their
category reasons named, as the HTTP API serves them. A list computed while the export
runs may be exported in its old or its new form; each user appears at most once.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import redis
from tqdm import tqdm

from streams.export import CSV_HEADER, Segment, csv_rows, jsonl_line
from streams.security import redis_options
from streams.serving import Keys, decode_user, name_categories
from streams.settings import Settings, require

FORMATS = ("jsonl", "csv")


def active_version(client: redis.Redis, namespace: str) -> int:
    """The version readers are pointed at; LookupError when none is."""
    raw = client.get(Keys(namespace, 0).active)
    if raw is None:
        raise LookupError(f"no active version: key {namespace}:active is not set")
    return int(raw)


def export_lists(
    settings: Settings,
    out: Path,
    fmt: str = "jsonl",
    segment: Segment | None = None,
    progress: bool = True,
    page: int = 1_000,
) -> tuple[int, int]:
    """Write the lists to ``out``; returns (users scanned, users written)."""
    require(settings, "redis_url")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    client = redis.Redis.from_url(settings.redis_url, **redis_options(settings))
    scanned = written = 0
    try:
        keys = Keys(settings.namespace, active_version(client, settings.namespace))
        prefix = keys.user("")
        categories = _Categories(client, keys)
        total = client.dbsize()  # an upper bound for the bar: other keys share the db
        bar = tqdm(total=total, unit="key", disable=None if progress else True, file=sys.stderr)
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(CSV_HEADER)
            cursor = 0
            while True:
                cursor, names = client.scan(cursor, match=prefix + "*", count=page)
                bar.update(len(names))
                values = client.mget(names) if names else []
                records = {
                    name.decode()[len(prefix) :]: decode_user(raw)
                    for name, raw in zip(names, values, strict=True)
                    if raw is not None  # else expired between SCAN and MGET
                }
                scanned += len(records)
                if segment is not None:
                    records = {u: r for u, r in records.items() if segment(u, r)}
                categories.name(records.values())  # only for the users written
                for uid, record in records.items():
                    written += 1
                    if writer is not None:
                        writer.writerows(csv_rows(uid, record))
                    else:
                        fh.write(jsonl_line(uid, record).decode())
                if cursor == 0:
                    break
        bar.close()
    finally:
        client.close()
    return scanned, written


class _Categories:
    """Names packed records' category reasons from the items' records, one MGET a page."""

    KEPT = 100_000  # items remembered before starting over

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.known: dict[str, str] = {}

    def name(self, records: Iterable[dict[str, Any]]) -> None:
        rows = [row for record in records for row in record["items"] if row[2] == "c"]
        if len(self.known) > self.KEPT:
            self.known.clear()
        missing = list(dict.fromkeys(row[0] for row in rows if row[0] not in self.known))
        if missing:
            metas = self.client.mget([self.keys.item_meta(i) for i in missing])
            for item, raw in zip(missing, metas, strict=True):
                self.known[item] = (orjson.loads(raw).get("category") or "") if raw else ""
        name_categories(rows, self.known.get)
