"""Event types (version 1) and their field specs.

Times are integer epoch milliseconds of event time. Ids are opaque strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.fields import Field, Schema

VIEW = "view"
CLICK = "click"
ADD_TO_CART = "add_to_cart"
REMOVE_FROM_CART = "remove_from_cart"
PURCHASE = "purchase"
INTERACTION_TYPES = (VIEW, CLICK, ADD_TO_CART, REMOVE_FROM_CART, PURCHASE)


@dataclass(frozen=True, slots=True)
class Interaction:
    """A user did something with an item at event time ``ts`` (epoch ms)."""

    event_id: str
    type: str
    user_id: str
    item_id: str
    ts: int
    session_id: str | None = None
    request_id: str | None = None
    variant: str | None = None
    price: float | None = None
    quantity: int | None = None
    context: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Impression:
    """A list of items shown to a user, so clicks can be joined to real exposure."""

    event_id: str
    request_id: str
    user_id: str
    items: tuple[str, ...]
    ts: int
    variant: str | None = None
    surface: str | None = None
    sources: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """The latest metadata of one item; ``deleted`` and ``in_stock`` filter it out of lists."""

    item_id: str
    ts: int
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    in_stock: bool = True
    deleted: bool = False


_EVENT_ID = Field("event_id", "id", True, "unique per event; duplicates are ignored")
_USER = Field("user_id", "id", True, "the user; also the Kafka message key")
_TS = Field("ts", "ts", True, "event time, epoch milliseconds (UTC)")

INTERACTION = Schema(
    "interaction",
    1,
    (
        _EVENT_ID,
        Field("type", "str", True, "what the user did", enum=INTERACTION_TYPES),
        _USER,
        Field("item_id", "id", True, "the item"),
        _TS,
        Field("session_id", "id", doc="the user's session"),
        Field("request_id", "id", doc="the list (impression) this interaction came from"),
        Field("variant", "str", doc="A/B variant of that list", max_len=64),
        Field("price", "number", doc="unit price paid or shown", minimum=0),
        Field("quantity", "int", doc="units (carts, purchases)", minimum=1),
        Field("context", "object", doc="free-form context: device, page, referrer"),
    ),
    "A click, view, cart change or purchase. Topic `interactions`, key = user_id.",
)

IMPRESSION = Schema(
    "impression",
    1,
    (
        _EVENT_ID,
        Field("request_id", "id", True, "id of this shown list; clicks refer to it"),
        _USER,
        Field("items", "id_list", True, "item ids in the order shown", max_items=200),
        _TS,
        Field("variant", "str", doc="A/B variant", max_len=64),
        Field("surface", "str", doc="where it was shown: home, product, email", max_len=64),
        Field(
            "sources",
            "id_list",
            doc="per slot, the reason code of the item shown there (b:<item>, v:<item>, "
            "c:<category>, t); same length as items",
        ),
    ),
    "A recommendation list shown to a user. Topic `impressions`, key = user_id.",
)

CATALOG_ITEM = Schema(
    "catalog_item",
    1,
    (
        Field("item_id", "id", True, "the item; also the Kafka message key"),
        _TS,
        Field("title", "str", doc="display title", max_len=512),
        Field("category", "label", doc="dotted category path, e.g. electronics.smartphone"),
        Field("brand", "str", doc="brand name"),
        Field("price", "number", doc="current price", minimum=0),
        Field("in_stock", "bool", doc="false hides the item from lists (default true)"),
        Field("deleted", "bool", doc="true removes the item from lists (default false)"),
    ),
    "Latest metadata of an item. Topic `catalog` (compacted), key = item_id.",
)

ALL_SCHEMAS = (INTERACTION, IMPRESSION, CATALOG_ITEM)
