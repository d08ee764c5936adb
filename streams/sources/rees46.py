"""The REES46 e-commerce clickstream CSV as catalog records and interactions, in file order.

Columns: ``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,
user_session`` (any order; matched by the header). A product's catalog record is emitted the
first time it appears and again whenever its category, brand or price changes, always before
the interaction that revealed it, so a consumer never sees an interaction for an item whose
current metadata it has not been told.

Rejected rows come out as :class:`SourceError` with one of the reasons ``not_utf8``,
``wrong_field_count``, ``bad_time``, ``unknown_event_type``, ``missing_field``, ``bad_id``,
``bad_price``.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from schemas.events import (
    ADD_TO_CART,
    PURCHASE,
    REMOVE_FROM_CART,
    VIEW,
    CatalogItem,
    Interaction,
)
from streams.sources.records import BOM, SourceError, SourceFormatError

COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
EVENT_TYPES = {
    "view": VIEW,
    "cart": ADD_TO_CART,
    "remove_from_cart": REMOVE_FROM_CART,
    "purchase": PURCHASE,
}
# Same rule as the schema's id fields, checked here so a bad id is reported against its line.
_ID_RE = re.compile(r"[^\x00-\x1f\x7f]{1,256}")

CatalogFields = tuple[str | None, str | None, float | None]


class _RowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_rees46(path: str | Path) -> Iterator[CatalogItem | Interaction | SourceError]:
    """Catalog records and interactions of a REES46 CSV file, in file order."""
    source = str(path)
    with open(path, "rb") as fh:
        index, width = _column_index(fh.readline().removeprefix(BOM), source)
        seen: dict[str, CatalogFields] = {}
        for line_no, raw in enumerate(fh, start=2):
            if not raw.strip():
                continue
            try:
                event, fields = _parse_row(raw, line_no, index, width)
            except _RowError as exc:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                yield SourceError(line_no, exc.reason, text, exc.detail, source)
                continue
            if seen.get(event.item_id) != fields:
                seen[event.item_id] = fields
                yield catalog_item(event.item_id, event.ts, fields)
            yield event


def catalog_item(item_id: str, ts: int, fields: CatalogFields) -> CatalogItem:
    """The catalog record of a REES46 product, with a title synthesized from its fields."""
    category, brand, price = fields
    leaf = category.rsplit(".", 1)[-1].replace("_", " ") if category else ""
    if not leaf or leaf.startswith("cat:"):
        leaf = "item"
    title = " ".join(p for p in (brand.title() if brand else "", leaf, item_id) if p)
    return CatalogItem(
        item_id=item_id, ts=ts, title=title, category=category, brand=brand, price=price
    )


def _column_index(header: bytes, source: str) -> tuple[dict[str, int], int]:
    names = [c.strip().lower() for c in header.decode("utf-8", "replace").split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise SourceFormatError(f"{source}: not a REES46 CSV, header lacks {', '.join(missing)}")
    return {c: names.index(c) for c in COLUMNS}, len(names)


def _split(raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise _RowError("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    # The dataset never quotes; fall back to the csv module only for lines that do.
    return next(csv.reader([text])) if '"' in text else text.split(",")


def _parse_row(
    raw: bytes, line_no: int, index: dict[str, int], width: int
) -> tuple[Interaction, CatalogFields]:
    cells = _split(raw)
    if len(cells) != width:
        raise _RowError("wrong_field_count", f"{len(cells)} fields, expected {width}")
    row = {name: cells[i].strip() for name, i in index.items()}
    kind = EVENT_TYPES.get(row["event_type"])
    if kind is None:
        raise _RowError("unknown_event_type", f"event_type {row['event_type']!r}")
    item_id, user_id = _id(row, "product_id"), _id(row, "user_id")
    interaction = Interaction(
        event_id=f"rees46:{line_no}:{hashlib.blake2b(raw, digest_size=4).hexdigest()}",
        type=kind,
        user_id=user_id,
        item_id=item_id,
        ts=_parse_time(row["event_time"]),
        session_id=row["user_session"] or None,
        price=_price(row["price"]),
    )
    return interaction, (_category(row), row["brand"] or None, interaction.price)


def _parse_time(text: str) -> int:
    # The dataset documents UTC, so a time without a zone is read as UTC rather than local.
    try:
        moment = datetime.fromisoformat(text.removesuffix(" UTC"))
    except ValueError:
        raise _RowError(
            "bad_time", f"event_time {text!r} is not 'YYYY-MM-DD HH:MM:SS UTC'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    if ms < 0:
        raise _RowError("bad_time", f"event_time {text!r} is before 1970")
    return ms


def _id(row: dict[str, str], name: str) -> str:
    value = row[name]
    if not value:
        raise _RowError("missing_field", f"{name} is empty")
    if not _ID_RE.fullmatch(value):
        raise _RowError("bad_id", f"{name} is longer than 256 characters or has control characters")
    return value


def _price(text: str) -> float | None:
    if not text:
        return None
    try:
        price = float(text)
    except ValueError:
        raise _RowError("bad_price", f"price {text!r} is not a number") from None
    if not math.isfinite(price) or price < 0:
        raise _RowError("bad_price", f"price {text!r} is negative or not finite")
    return price


def _category(row: dict[str, str]) -> str | None:
    if row["category_code"]:
        return row["category_code"]
    return f"cat:{row['category_id']}" if row["category_id"] else None
