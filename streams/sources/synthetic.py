"""A seeded synthetic shop: a catalog, then a clickstream with realistic skew and funnels.

Item popularity follows a Zipf-like law, users favour one to three categories, events come in
sessions (several users' sessions interleaved in time) and flow view -> add_to_cart ->
purchase. Everything is drawn from ``random.Random(seed)``: the same arguments give the same
events, on any machine and Python process.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from schemas.events import ADD_TO_CART, PURCHASE, VIEW, CatalogItem, Interaction

DEFAULT_CATEGORIES = (
    "electronics.smartphone",
    "electronics.audio.headphone",
    "computers.notebook",
    "appliances.kitchen.refrigerators",
    "apparel.shoes",
    "furniture.living_room.sofa",
    "kids.toys",
    "sport.bicycle",
)
DEFAULT_START_TS_MS = 1_569_888_000_000  # 2019-10-01T00:00:00Z, where the REES46 slice starts
ITEM_ZIPF = 1.0
USER_ZIPF = 0.8
P_EXPLORE = 0.1  # a view outside the user's favourite categories
P_CART = 0.06  # after a view, put that item in the cart
P_BUY = 0.5  # with something in the cart, buy it
P_END = 0.12  # end the session after an event
P_NEW_SESSION = 0.3
MAX_ACTIVE_SESSIONS = 64


@dataclass(slots=True)
class _Shop:
    """Items per category with cumulative popularity weights, for O(log n) weighted draws."""

    categories: list[str]
    items: dict[str, list[str]]
    cum_weights: dict[str, list[float]]
    prices: dict[str, float]


@dataclass(slots=True)
class _Session:
    user: str
    session_id: str
    favourites: list[str]
    cum_affinity: list[float]
    last_view: str | None = None
    cart: list[str] = field(default_factory=list)


def synthetic(
    n_users: int,
    n_items: int,
    n_events: int,
    seed: int = 0,
    start_ts_ms: int = DEFAULT_START_TS_MS,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    mean_gap_ms: float = 250.0,
) -> Iterator[CatalogItem | Interaction]:
    """``n_items`` catalog records, then ``n_events`` interactions in event-time order."""
    if min(n_users, n_items, len(categories)) < 1 or n_events < 0:
        raise ValueError("need at least one user, item and category, and n_events >= 0")
    rng = random.Random(seed)
    shop, catalog = _build_shop(rng, n_items, categories, start_ts_ms)
    yield from catalog
    yield from _clickstream(rng, shop, n_users, n_events, seed, start_ts_ms, mean_gap_ms)


def _build_shop(
    rng: random.Random, n_items: int, categories: Sequence[str], ts: int
) -> tuple[_Shop, list[CatalogItem]]:
    ranks = list(range(1, n_items + 1))
    rng.shuffle(ranks)  # popularity rank independent of id order
    base_price = {c: round(rng.lognormvariate(4.0, 1.0), 2) for c in categories}
    items: dict[str, list[str]] = {}
    weights: dict[str, list[float]] = {}
    prices: dict[str, float] = {}
    catalog = []
    for i, rank in enumerate(ranks):
        item_id, category = f"i{i}", rng.choice(categories)
        price = round(base_price[category] * rng.uniform(0.5, 2.0), 2)
        brand = f"brand{rng.randrange(8)}"
        items.setdefault(category, []).append(item_id)
        weights.setdefault(category, []).append(1.0 / rank**ITEM_ZIPF)
        prices[item_id] = price
        leaf = category.rsplit(".", 1)[-1].replace("_", " ")
        title = f"{brand.title()} {leaf} {item_id}"
        catalog.append(
            CatalogItem(
                item_id=item_id, ts=ts, title=title, category=category, brand=brand, price=price
            )
        )
    cum = {c: list(itertools.accumulate(w)) for c, w in weights.items()}
    return _Shop(sorted(items), items, cum, prices), catalog


def _clickstream(
    rng: random.Random,
    shop: _Shop,
    n_users: int,
    n_events: int,
    seed: int,
    clock: int,
    mean_gap_ms: float,
) -> Iterator[Interaction]:
    user_cum = list(itertools.accumulate(1.0 / (u + 1) ** USER_ZIPF for u in range(n_users)))
    active: dict[str, _Session] = {}
    sessions = itertools.count()
    for n in range(n_events):
        clock += int(rng.expovariate(1.0 / mean_gap_ms))
        if not active or (len(active) < MAX_ACTIVE_SESSIONS and rng.random() < P_NEW_SESSION):
            user = f"u{_draw(rng, user_cum)}"
            if user not in active:
                active[user] = _new_session(shop, user, f"syn{seed}-s{next(sessions)}", seed)
        session = rng.choice(list(active.values()))
        kind, item = _next_action(rng, shop, session)
        yield Interaction(
            event_id=f"syn:{seed}:{n}",
            type=kind,
            user_id=session.user,
            item_id=item,
            ts=clock,
            session_id=session.session_id,
            price=shop.prices[item],
            quantity=None if kind == VIEW else 1,
        )
        if rng.random() < P_END:
            del active[session.user]


def _new_session(shop: _Shop, user: str, session_id: str, seed: int) -> _Session:
    # A per-user generator keeps a user's tastes fixed across sessions and independent of
    # how many draws the shared generator made before this user showed up.
    taste = random.Random(f"{seed}:{user}")
    favourites = taste.sample(shop.categories, k=min(len(shop.categories), taste.randint(1, 3)))
    cum = list(itertools.accumulate(taste.uniform(0.5, 1.0) for _ in favourites))
    return _Session(user, session_id, favourites, cum)


def _next_action(rng: random.Random, shop: _Shop, session: _Session) -> tuple[str, str]:
    roll = rng.random()
    if session.last_view is not None and roll < P_CART:
        item, session.last_view = session.last_view, None
        session.cart.append(item)
        return ADD_TO_CART, item
    if session.cart and roll < P_CART + P_BUY:
        return PURCHASE, session.cart.pop(0)
    if rng.random() < P_EXPLORE:
        category = rng.choice(shop.categories)
    else:
        category = session.favourites[_draw(rng, session.cum_affinity)]
    session.last_view = shop.items[category][_draw(rng, shop.cum_weights[category])]
    return VIEW, session.last_view


def _draw(rng: random.Random, cum_weights: list[float]) -> int:
    """Index drawn with probability proportional to its weight, given cumulative weights."""
    # min(): float rounding can put the product exactly on the total.
    return min(
        bisect.bisect_right(cum_weights, rng.random() * cum_weights[-1]), len(cum_weights) - 1
    )
