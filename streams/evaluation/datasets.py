"""The data sets the evaluation knows: where their files are, how to replay and plot them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.events import ADD_TO_CART, CLICK, PURCHASE, VIEW, CatalogItem, Interaction
from streams.evaluation.protocol import DAY_MS, POSITIVE, Event
from streams.sources import SourceError, read_movielens, read_rees46
from streams.sources.records import SourceFormatError

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Per-data-set choices that depend on its time span (all durations in event time)."""

    name: str
    folder: str
    bucket_ms: int  # width of one point of the HitRate-over-time plot
    bucket_label: str
    horizon_ms: int  # Recall@K targets: the user's new positives within this horizon
    retrain_every_ms: int  # batch ALS schedule
    recent_half_life_ms: int  # recent popularity
    case_types: frozenset[str]  # interaction types that are cases (and co-occurrence positives)
    case_label: str


SPECS = {
    "movielens": DatasetSpec(
        "movielens",
        "movielens-100k",
        7 * DAY_MS,
        "week",
        DAY_MS,
        DAY_MS,
        7 * DAY_MS,
        POSITIVE,
        "a positive (rating >= 4, read as purchase)",
    ),
    # The REES46 slice spans under three hours, so every duration shrinks accordingly.
    # Nearly every cart or purchase in it is of an item the user viewed first (excluded by
    # the protocol), so a case is any view, cart or purchase of an item new to the user.
    "rees46": DatasetSpec(
        "rees46",
        "rees46-multicategory-2019oct-head",
        15 * MINUTE_MS,
        "15 minutes",
        30 * MINUTE_MS,
        30 * MINUTE_MS,
        60 * MINUTE_MS,
        frozenset({VIEW, CLICK, ADD_TO_CART, PURCHASE}),
        "any view, click, cart or purchase",
    ),
}


@dataclass(slots=True)
class Loaded:
    """A data set as one replayable stream, in event-time order, plus what was rejected."""

    events: list[Event]
    rejected: Counter[str]
    source: Path


def spec_for(dataset: str) -> DatasetSpec:
    """The spec of ``dataset``; raises ``ValueError`` naming the known ones."""
    try:
        return SPECS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(SPECS)}") from None


def source_path(spec: DatasetSpec, data_dir: Path) -> Path:
    """The file or folder to read: ``data_dir`` itself or its ``spec.folder`` child."""
    base = data_dir / spec.folder if (data_dir / spec.folder).exists() else data_dir
    if spec.name != "rees46" or base.is_file():
        return base
    csvs = sorted(base.glob("*.csv"))
    if not csvs:
        raise SourceFormatError(f"{base}: no REES46 .csv file here or in {base / spec.folder}")
    return csvs[0]


def load(spec: DatasetSpec, data_dir: Path, limit: int | None = None) -> Loaded:
    """Read the data set, sort it by event time (stable) and keep the first ``limit``
    interactions with the catalogue records that precede them."""
    path = source_path(spec, data_dir)
    reader = read_movielens if spec.name == "movielens" else read_rees46
    events, rejected = _split(reader(path))
    events.sort(key=lambda e: e.ts)  # stable: ties keep source order (catalog first)
    if limit is not None:
        events = _head(events, limit)
    return Loaded(events, rejected, path)


def _split(records: Iterable[object]) -> tuple[list[Event], Counter[str]]:
    events: list[Event] = []
    rejected: Counter[str] = Counter()
    for rec in records:
        if isinstance(rec, SourceError):
            rejected[rec.reason] += 1
        elif isinstance(rec, CatalogItem | Interaction):
            events.append(rec)
        else:
            rejected["unsupported_event"] += 1
    return events, rejected


def _head(events: list[Event], limit: int) -> list[Event]:
    out: list[Event] = []
    n = 0
    for ev in events:
        if isinstance(ev, Interaction):
            if n == limit:
                break
            n += 1
        out.append(ev)
    return out
