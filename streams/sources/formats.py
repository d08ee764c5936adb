"""Which reader fits a path: a REES46 CSV, a JSON Lines file or a MovieLens folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from streams.sources.jsonl import read_jsonl
from streams.sources.movielens import movielens_dir, read_movielens
from streams.sources.records import BOM, SourceFormatError, SourceRecord
from streams.sources.rees46 import COLUMNS, read_rees46

REES46 = "rees46"
JSONL = "jsonl"
MOVIELENS = "movielens"
FORMATS = (REES46, JSONL, MOVIELENS)


def detect_format(path: str | Path) -> str:
    """``"rees46"``, ``"jsonl"`` or ``"movielens"``, from the content rather than the file name."""
    target = Path(path)
    if target.is_dir():
        movielens_dir(target)  # raises with a clear message when it is not one
        return MOVIELENS
    if not target.is_file():
        raise SourceFormatError(f"{target}: no such file or folder")
    with open(target, "rb") as fh:
        first = b""
        for line in fh:
            first = line.removeprefix(BOM).strip()
            if first:
                break
    if first.startswith(b"{"):
        return JSONL
    header = {c.strip().lower() for c in first.decode("utf-8", "replace").split(",")}
    if header.issuperset(COLUMNS):
        return REES46
    raise SourceFormatError(
        f"{target}: unknown format (expected a REES46 CSV header, JSON Lines or a MovieLens folder)"
    )


def read_events(path: str | Path, fmt: str | None = None) -> Iterator[SourceRecord]:
    """Records of ``path`` read with the reader for ``fmt`` (detected when not given)."""
    fmt = fmt or detect_format(path)
    if fmt == REES46:
        return read_rees46(path)
    if fmt == JSONL:
        return read_jsonl(path)
    if fmt == MOVIELENS:
        return read_movielens(path)
    raise SourceFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
