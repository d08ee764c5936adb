"""Re-ranking of scored candidates: filters, business rules, category diversity, exploration.

Order of operations: drop what may not be shown (excluded, purchased, deleted, out of
stock) → apply business rules (multiply the score of items matching a category prefix or
a brand: ``boost > 1``, ``bury < 1``, ``0`` hides) → fill the list greedily, skipping an
item whose category already holds ``category_cap`` places → optionally give one slot to
exploration: a River bandit picks a candidate source and that source's best item not yet
listed takes the slot; the bandit is rewarded when the user goes on to like that item.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import bandit  # type: ignore[import-untyped, unused-ignore]

Catalog = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """Multiply the score of items in ``category`` (prefix) or of ``brand`` by ``factor``."""

    factor: float
    category: str | None = None
    brand: str | None = None

    def matches(self, meta: Mapping[str, Any] | None) -> bool:
        """True when the item's record matches this rule."""
        if meta is None:
            return False
        cat = str(meta.get("category") or "")
        if self.category is not None and not (
            cat == self.category or cat.startswith(self.category + ".")
        ):
            return False
        return self.brand is None or meta.get("brand") == self.brand


def parse_rules(raw: str) -> tuple[Rule, ...]:
    """Rules from ``category=A.B,brand=X*1.5;brand=Y*0``: ``;`` between rules, ``,``
    between the conditions of one rule (all must hold), ``*`` before its factor.

    A category matches itself and every category below it (``A`` matches ``A.B``).
    Values may not contain ``;``, ``,``, ``=`` or ``*``. Raises ``ValueError``.
    """
    rules: list[Rule] = []
    for text in (part.strip() for part in raw.split(";")):
        if not text:
            continue
        cond, star, factor_text = text.rpartition("*")
        if not star or not cond:
            raise ValueError(f"rule {text!r} needs conditions and '*factor'")
        try:
            factor = float(factor_text)
        except ValueError:
            raise ValueError(f"rule {text!r}: factor {factor_text!r} is not a number") from None
        if not factor >= 0 or factor == float("inf"):
            raise ValueError(f"rule {text!r}: factor must be a finite number >= 0")
        found: dict[str, str] = {}
        for pair in cond.split(","):
            key, eq, value = (x.strip() for x in pair.partition("="))
            if not eq or key not in ("category", "brand") or not value or key in found:
                raise ValueError(
                    f"rule {text!r}: conditions are category=<prefix> and/or brand=<name>"
                )
            found[key] = value
        rules.append(Rule(factor, found.get("category"), found.get("brand")))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class RerankParams:
    """Diversity cap (places per category, 0 = none), rules, exploration slot and rate."""

    category_cap: int = 0
    rules: tuple[Rule, ...] = ()
    explore_slot: int | None = None  # 0-based position of the exploration slot, None = off
    epsilon: float = 0.1
    seed: int = 0


def shown(meta: Mapping[str, Any] | None) -> bool:
    """An item may be shown unless its record says deleted or out of stock."""
    return meta is None or (bool(meta.get("in_stock", True)) and not meta.get("deleted", False))


def apply_rules(score: float, meta: Mapping[str, Any] | None, rules: Sequence[Rule]) -> float:
    """The score after every matching business rule."""
    for rule in rules:
        if rule.matches(meta):
            score *= rule.factor
    return score


@dataclass(slots=True)
class Explorer:
    """A seeded epsilon-greedy bandit over candidate sources for the exploration slot."""

    sources: tuple[str, ...]
    epsilon: float
    seed: int
    policy: Any = None
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # user -> (item, source)

    def __post_init__(self) -> None:
        self.policy = bandit.EpsilonGreedy(epsilon=self.epsilon, seed=self.seed)

    def pick(self, available: Sequence[str]) -> str | None:
        """The source to explore with, among those that have an unlisted candidate."""
        arms = [s for s in self.sources if s in available]
        return str(self.policy.pull(arms)) if arms else None

    def served(self, user_id: str, item: str, source: str) -> None:
        """Remember what the exploration slot showed this user."""
        self.pending[user_id] = (item, source)

    def feedback(self, user_id: str, item: str) -> None:
        """The user liked ``item``: reward the last explored source 1 if it was that item."""
        shown_item = self.pending.pop(user_id, None)
        if shown_item is not None:
            self.policy.update(shown_item[1], 1.0 if shown_item[0] == item else 0.0)


def diversify(
    ranked: Iterable[tuple[str, float]], catalog: Catalog, k: int, cap: int
) -> list[tuple[str, float]]:
    """The first ``k`` items, at most ``cap`` per category (0 = no cap); refills if short."""
    if k <= 0:
        return []
    if cap <= 0:
        return list(itertools.islice(ranked, k))
    per: dict[str, int] = {}
    out: list[tuple[str, float]] = []
    held: list[tuple[str, float]] = []
    for item, score in ranked:
        meta = catalog(item)
        cat = str(meta.get("category") or "") if meta else ""
        if cat and per.get(cat, 0) >= cap:
            held.append((item, score))
            continue
        per[cat] = per.get(cat, 0) + 1
        out.append((item, score))
        if len(out) == k:
            return out
    return out + held[: k - len(out)]
