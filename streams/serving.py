"""The Redis key contract and the encoding of published lists (no Redis here).

Keys live under a namespace per output version, ``<ns>:v<N>:``, and the pointer key
``<ns>:active`` names the live version. Values are orjson documents, except user records
written with ``KAPPAREC_USER_LIST_ENCODING=packed`` (``streams.packed``): read a user
record with :func:`decode_user`, which tells the two apart by the first byte.

Ids go into keys verbatim (UTF-8), always as the last segment, after a kind prefix
(``user:``, ``bought:``, ...). No kind prefix is a prefix of another, so the key
determines the kind and the id: :meth:`Keys.parse` is the inverse of the builders, and
ids containing ``:``, ``*`` or look-alike characters cannot collide. Ids that could not
be encoded (surrogates) or would break a terminal never get this far: the id rule of
``schemas.ids`` sends them to the dead-letter topic at ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.blending import Rec
from streams.packed import FORMAT as PACKED
from streams.packed import pack_user, unpack_user
from streams.user_state import BOUGHT, VIEWED

RECORD_VERSION = 1
USER, ITEM_META, TRENDING, POPULAR, META = "user", "item", "trending", "popular", "meta"
SIMILAR = "similar"
# Every key kind after the version prefix: none is a prefix of another (tested).
KINDS = (USER, BOUGHT, VIEWED, SIMILAR, ITEM_META, TRENDING, POPULAR, META)
_ALL, _CAT = "all", "cat:"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names of one namespace and version."""

    namespace: str
    version: int

    @property
    def active(self) -> str:
        """Pointer to the live version (value: the version number as text)."""
        return f"{self.namespace}:active"

    @property
    def prefix(self) -> str:
        """Prefix of every key of this version."""
        return f"{self.namespace}:v{self.version}:"

    def user(self, user_id: str) -> str:
        """The user's ranked list."""
        return f"{self.prefix}{USER}:{user_id}"

    def item(self, relation: str, item_id: str) -> str:
        """An item's neighbour list: relation is ``bought``, ``viewed`` or ``similar``."""
        return f"{self.prefix}{relation}:{item_id}"

    def bought(self, item_id: str) -> str:
        """Customers who bought this also bought."""
        return self.item(BOUGHT, item_id)

    def viewed(self, item_id: str) -> str:
        """Customers who viewed this also viewed."""
        return self.item(VIEWED, item_id)

    def similar(self, item_id: str) -> str:
        """Items whose vectors are nearest (content, from the catalogue record)."""
        return self.item(SIMILAR, item_id)

    def trending(self, category: str = "") -> str:
        """Trending items overall, or in ``category``."""
        return f"{self.prefix}{TRENDING}:" + (_CAT + category if category else _ALL)

    def popular(self, category: str = "") -> str:
        """All-time popular items overall, or in ``category``."""
        return f"{self.prefix}{POPULAR}:" + (_CAT + category if category else _ALL)

    def item_meta(self, item_id: str) -> str:
        """An item's catalogue record (title, category, brand, price, stock)."""
        return f"{self.prefix}{ITEM_META}:{item_id}"

    def meta(self) -> str:
        """Version metadata: when it was started, by which app id."""
        return self.prefix + META

    def parse(self, key: str) -> tuple[str, str]:
        """``(kind, argument)`` of a key of this version: the inverse of the builders.

        The argument is the id (user, item), the category (``""`` for all) of a
        trending/popular key, or ``""`` for ``meta``. Raises ``ValueError`` for any other key.
        """
        if not key.startswith(self.prefix):
            raise ValueError(f"{key!r} is not a key of {self.prefix!r}")
        rest = key[len(self.prefix) :]
        if rest == META:
            return META, ""
        kind, sep, arg = rest.partition(":")
        if not sep or kind not in KINDS or kind == META:
            raise ValueError(f"{key!r} has no known kind")
        if kind in (TRENDING, POPULAR):
            if arg == _ALL:
                return kind, ""
            if not arg.startswith(_CAT) or arg == _CAT:
                raise ValueError(f"{key!r} is neither {kind}:all nor {kind}:cat:<category>")
            return kind, arg[len(_CAT) :]
        return kind, arg

    def metrics_ab(self) -> str:
        """The A/B report: CTR and conversion per variant and per source, and the test."""
        return f"{self.prefix}metrics:ab"

    def alerts(self) -> str:
        """Drift alerts, newest first (a list of JSON documents, at most 100)."""
        return f"{self.prefix}alerts"


def encode_user(
    recs: Sequence[Rec],
    recent: Sequence[str],
    version: int,
    variant: str,
    computed_at_ms: int,
    event_ts: int,
    packed: Callable[[str], str | None] | None = None,
) -> bytes:
    """A user's record: ranked items with score and reason, plus the anchors used.

    With ``packed`` (the catalogue's category of an item), the packed record when the
    list fits it (:func:`streams.packed.pack_user`), else this orjson one.
    """
    if packed is not None:
        raw = pack_user(recs, recent, version, variant, computed_at_ms, event_ts, packed)
        if raw is not None:
            return raw
    return orjson.dumps(
        {
            "v": RECORD_VERSION,
            "version": version,
            "variant": variant,
            "computed_at": computed_at_ms,
            "event_ts": event_ts,
            "items": [[i, round(score, 4), why] for i, score, why in recs],  # Rec.to_list
            "recent": list(recent),
        }
    )


def encode_list(items: Sequence[Sequence[Any]], computed_at_ms: int, event_ts: int) -> bytes:
    """An item or trending list: ``[[item_id, score], ...]`` best first."""
    return orjson.dumps(
        {"v": RECORD_VERSION, "computed_at": computed_at_ms, "event_ts": event_ts, "items": items}
    )


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """Decode any published record; ``None`` stays ``None``."""
    return None if raw is None else orjson.loads(raw)


def decode_user(raw: bytes, first: int | None = None) -> dict[str, Any]:
    """A user record, orjson or packed, as a dict of the orjson record's fields.

    A packed record's category reasons read ``c``: the item's own category, named in its
    catalogue record (:meth:`Keys.item_meta`). ``first`` lets a packed record decode only
    its first items; an orjson record is decoded whole.
    """
    if raw[:1] == b"{":
        return dict(orjson.loads(raw))
    if raw[:1] == bytes([PACKED]):
        return unpack_user(raw, first)
    raise ValueError(f"not a user record: first byte {raw[:1]!r}")


def name_categories(rows: Sequence[list[Any]], category: Callable[[str], str | None]) -> None:
    """A packed record's ``c`` reasons, in place, as ``c:<category>`` where it is known.

    ``rows`` are ``[item_id, score, reason]``; ``category`` gives an item's category
    (from its catalogue record, :meth:`Keys.item_meta`).
    """
    for row in rows:
        if row[2] == "c" and (name := category(row[0])):
            row[2] = "c:" + name


def same_items(a: bytes | None, b: bytes) -> bool:
    """True when two records (user records of either encoding, or item lists) hold the same
    items, ignoring timestamps."""
    if a is None:
        return False
    return bool(decode_user(a)["items"] == decode_user(b)["items"])
