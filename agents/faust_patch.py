"""Replacing methods of Faust's classes: once per process, and loudly when one is missing.

Each module under ``agents/faust_*.py`` (and ``agents/log_ends.py``) corrects one Faust
behaviour by wrapping a method. A Faust release without that method must stop the
worker at start-up, not run uncorrected (a stall, or lost table state, much later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def replace(cls: type, make: Callable[..., Any], *names: str) -> None:
    """Set the methods ``names`` of ``cls`` to what ``make(*originals)`` returns.

    ``make`` gets the current methods, in order, and returns one replacement, or a
    tuple of them for several names. Idempotent: a second call changes nothing. Each
    original stays reachable as ``_kapparec_original_<name>``.
    """
    marker = f"_kapparec_original_{names[0]}"
    if getattr(cls, marker, None) is not None:
        return
    originals = [getattr(cls, name, None) for name in names]
    missing = [name for name, fn in zip(names, originals, strict=True) if fn is None]
    if missing:
        raise RuntimeError(f"this Faust's {cls.__qualname__} lacks {', '.join(missing)}")
    made = make(*originals)
    replacements = made if len(names) > 1 else (made,)
    for name, original, fn in zip(names, originals, replacements, strict=True):
        setattr(cls, f"_kapparec_original_{name}", original)
        setattr(cls, name, fn)
