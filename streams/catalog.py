"""Catalogue records as stored: the latest record per item wins, by event time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from schemas.events import CatalogItem

_FIELDS = tuple(f.name for f in fields(CatalogItem))


def merge_record(previous: Mapping[str, Any] | None, item: CatalogItem) -> dict[str, Any] | None:
    """The record to store for ``item``, or ``None`` when it is older than ``previous``.

    A late, older record must not undo a newer one (the catalog topic is compacted,
    but a replay or a slow producer can still deliver out of order).
    """
    if previous is not None and previous.get("ts", 0) > item.ts:
        return None
    return {k: v for k in _FIELDS if (v := getattr(item, k)) is not None}
