"""``kapparec export``: the current lists of all (or a segment of) users, to JSONL or CSV.

It SCANs the user keys of the active version (no KEYS, so Redis keeps serving) and
fetches records with one MGET per SCAN page. A list computed while the export runs may
be exported in its old or its new form; each user appears at most once.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import redis
from tqdm import tqdm

from streams.export import CSV_HEADER, Segment, csv_rows, jsonl_line
from streams.serving import Keys, decode_user
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
    client = redis.Redis.from_url(settings.redis_url)
    scanned = written = 0
    try:
        keys = Keys(settings.namespace, active_version(client, settings.namespace))
        prefix = keys.user("")
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
                for name, raw in zip(names, values, strict=True):
                    if raw is None:  # expired between SCAN and MGET
                        continue
                    scanned += 1
                    uid, record = name.decode()[len(prefix) :], decode_user(raw)
                    if segment is not None and not segment(uid, record):
                        continue
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
