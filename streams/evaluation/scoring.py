"""Deterministic top-k selection shared by the baselines (numbering: streams.models.space)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.floating[Any]]


def top_items(
    scores: Scores, ids: list[str], k: int, exclude: set[str], positive_only: bool = True
) -> list[str]:
    """The ``k`` best-scoring ids, none in ``exclude`` (nor, by default, scoring <= 0).

    ``scores[i]`` belongs to ``ids[i]``; scores past ``len(ids)`` are ignored.

    Ties go to the lower number (the item seen first), so the answer is deterministic.
    """
    n = len(ids)
    s = scores[:n]
    order = np.argsort(-s, kind="stable")
    out: list[str] = []
    for i in order.tolist():
        if positive_only and s[i] <= 0:
            break
        item = ids[i]
        if item not in exclude:
            out.append(item)
            if len(out) == k:
                break
    return out
