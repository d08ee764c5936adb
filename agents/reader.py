"""The read path frontends use: one key lookup, with a fallback chain when it comes up short.

Chain for a user: the user's own list -> the lists of the user's recent items (from the
user's record, or passed in by a caller that knows the session) -> trending. Chain for an
item: the relation asked for -> the item's other lists (bought, viewed, similar) ->
trending. Items are
never repeated, and purchased/seen items stay out because the user's list excludes
them and the fallbacks skip the user's recent items.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.recommend import ANCHORS
from streams.serving import SIMILAR, Keys, decode_user, name_categories
from streams.user_state import BOUGHT, VIEWED

POINTER_CACHE_S = 1.0
# Items' categories, read to name a packed record's category reasons: how long one is
# trusted, and how many are kept before the cache starts over (about 10 MB).
CATEGORY_CACHE_S, CATEGORIES_KEPT = 60.0, 100_000
RELATIONS = (BOUGHT, VIEWED, SIMILAR)  # item lists, in the order a fallback tries them
REASONS = {BOUGHT: "b:", VIEWED: "v:", SIMILAR: "s:"}


class NoActiveVersion(LookupError):
    """No version is active (``<namespace>:active`` is not set): nothing to read yet."""


@dataclass
class ReadResult:
    """A list as served: ``[item_id, score, reason]`` rows, the version and the sources used."""

    items: list[list[Any]]
    version: int
    sources: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None
    degraded: bool = False  # served from the last trending list read, Redis unreachable

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI ``--json``, HTTP)."""
        out: dict[str, Any] = {
            "version": self.version,
            "sources": self.sources,
            "items": self.items,
        }
        if self.record is not None:
            for k in ("variant", "computed_at", "event_ts"):
                out[k] = self.record.get(k)
        if self.degraded:
            out["degraded"] = True
        return out


class Reader:
    """Reads published lists of the active version (pointer cached for a second)."""

    def __init__(self, redis: aioredis.Redis, namespace: str, version: int | None = None) -> None:
        self.redis = redis
        self.namespace = namespace
        self.pinned = version
        self._cached: tuple[float, int] | None = None
        # The last global trending list read (version, rows): what an outage falls back to.
        self.last_trending: tuple[int, list[list[Any]]] | None = None
        # item:<id> key -> (monotonic expiry, category or ""): see _name_categories
        self._categories: dict[str, tuple[float, str]] = {}

    async def version(self) -> int:
        """The version to read: pinned, else the active pointer."""
        if self.pinned is not None:
            return self.pinned
        now = time.monotonic()
        if self._cached and now - self._cached[0] < POINTER_CACHE_S:
            return self._cached[1]
        raw = await self.redis.get(Keys(self.namespace, 0).active)
        if raw is None:
            raise NoActiveVersion(f"no active version: key {self.namespace}:active is not set")
        version = int(raw)
        self._cached = (now, version)
        return version

    async def recommendations(
        self, user_id: str, k: int = 10, recent: Sequence[str] = ()
    ) -> ReadResult:
        """The user's list, topped up from recent items' lists and then trending."""
        keys = Keys(self.namespace, await self.version())
        raw = await self.redis.get(keys.user(user_id))
        # Rows beyond k are only read when some are skipped as the user's recent items.
        first = k + len(recent) + ANCHORS
        record = decode_user(raw, first) if raw is not None else None
        result = ReadResult([], keys.version, record=record)
        seen: set[str] = set(recent)
        if record is not None:
            seen.update(record.get("recent", []))
            _extend(result, record["items"], k, seen, "user", keep_reason=True)
            await self._name_categories(keys, result.items)
            recent = [*recent, *record.get("recent", [])]
        if len(result.items) < k and recent:
            anchors = list(dict.fromkeys(recent))[:10]
            names = [keys.item(rel, a) for a in anchors for rel in (BOUGHT, VIEWED)]
            lists = await self.redis.mget(names)
            for name, lst in zip(names, lists, strict=True):
                if lst is not None:
                    rel, _, anchor = name[len(keys.prefix) :].partition(":")
                    reason = ("b:" if rel == BOUGHT else "v:") + anchor
                    _extend(result, orjson.loads(lst)["items"], k, seen, "recent", reason)
        if len(result.items) < k:
            await self._top_up_trending(keys, result, k, seen)
        return result

    async def similar(self, item_id: str, k: int = 10, relation: str = BOUGHT) -> ReadResult:
        """An item's ``relation`` list, topped up with the other item lists, then trending.

        Relations, in fallback order: ``bought``, ``viewed``, ``similar`` (nearest item
        vectors: content from the catalogue record, so a new item has one at once).
        """
        keys = Keys(self.namespace, await self.version())
        order = [relation, *(r for r in RELATIONS if r != relation)]
        raws = await self.redis.mget([keys.item(rel, item_id) for rel in order])
        result = ReadResult([], keys.version)
        seen = {item_id}
        for rel, raw in zip(order, raws, strict=True):
            if raw is not None and len(result.items) < k:
                reason = REASONS[rel] + item_id
                _extend(result, orjson.loads(raw)["items"], k, seen, rel, reason)
        if len(result.items) < k:
            await self._top_up_trending(keys, result, k, seen)
        return result

    async def trending(self, category: str = "", k: int = 10) -> ReadResult:
        """Trending items overall or in a category."""
        keys = Keys(self.namespace, await self.version())
        result = ReadResult([], keys.version)
        raw = await self.redis.get(keys.trending(category))
        if raw is not None:
            rows = orjson.loads(raw)["items"]
            if not category:
                self.last_trending = (keys.version, rows)
            reason = f"c:{category}" if category else "t"
            _extend(result, rows, k, set(), "trending", reason)
        return result

    async def items(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Catalogue records of ``item_ids`` (those known), for display."""
        if not item_ids:
            return {}
        keys = Keys(self.namespace, await self.version())
        raws = await self.redis.mget([keys.item_meta(i) for i in item_ids])
        return {i: orjson.loads(r) for i, r in zip(item_ids, raws, strict=True) if r is not None}

    async def _name_categories(self, keys: Keys, rows: list[list[Any]]) -> None:
        """A packed record's ``c`` reasons become ``c:<category>`` from the items' records.

        Categories read are kept for ``CATEGORY_CACHE_S``: the items a list shows are
        mostly popular ones, and without the cache most requests made a second Redis read
        (docs/HTTP_API.md has what that cost).
        """
        unnamed = [row for row in rows if row[2] == "c"]
        if not unnamed:
            return
        now = time.monotonic()
        cache = self._categories
        if len(cache) > CATEGORIES_KEPT:
            cache.clear()
        # This request's names, kept apart: another request may clear the cache meanwhile.
        names: dict[str, str] = {}
        for item in {row[0] for row in unnamed}:
            hit = cache.get(keys.item_meta(item))  # the version's own catalogue record
            if hit is not None and hit[0] >= now:
                names[item] = hit[1]
        missing = [item for item in dict.fromkeys(row[0] for row in unnamed) if item not in names]
        if missing:
            metas = [keys.item_meta(i) for i in missing]
            for item, key, raw in zip(missing, metas, await self.redis.mget(metas), strict=True):
                category = orjson.loads(raw).get("category") if raw is not None else None
                names[item] = category or ""
                cache[key] = (now + CATEGORY_CACHE_S, names[item])
        name_categories(unnamed, names.get)

    async def _top_up_trending(
        self, keys: Keys, result: ReadResult, k: int, seen: set[str]
    ) -> None:
        raw = await self.redis.get(keys.trending())
        if raw is not None:
            rows = orjson.loads(raw)["items"]
            self.last_trending = (keys.version, rows)
            _extend(result, rows, k, seen, "trending", "t")

    def degraded(self, k: int = 10, exclude: Sequence[str] = ()) -> ReadResult | None:
        """Trending as last read, for when Redis cannot be reached; None if never read."""
        if self.last_trending is None:
            return None
        version, rows = self.last_trending
        result = ReadResult([], version, degraded=True)
        _extend(result, rows, k, set(exclude), "trending", "t")
        return result


def _extend(
    result: ReadResult,
    rows: list[list[Any]],
    k: int,
    seen: set[str],
    source: str,
    reason: str = "",
    keep_reason: bool = False,
) -> None:
    added = False
    for row in rows:
        if len(result.items) >= k:
            break
        item = row[0]
        if item in seen:
            continue
        seen.add(item)
        why = row[2] if keep_reason and len(row) > 2 else reason
        result.items.append([item, row[1], why])
        added = True
    if added and source not in result.sources:
        result.sources.append(source)
