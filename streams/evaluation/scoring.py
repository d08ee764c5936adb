"""Dense item numbering and deterministic top-k selection shared by the baselines."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.floating[Any]]


class ItemIndex:
    """Item ids numbered 0, 1, 2, ... in order of first appearance."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, item_id: str) -> int:
        """The item's number, assigning the next one to a new item."""
        i = self.pos.get(item_id)
        if i is None:
            i = self.pos[item_id] = len(self.ids)
            self.ids.append(item_id)
        return i


def grow(
    arr: npt.NDArray[Any], n: int, axes: tuple[int, ...] = (0,), step: int | None = None
) -> npt.NDArray[Any]:
    """``arr`` zero-padded so each of ``axes`` holds at least ``n``.

    Capacity doubles, or with ``step`` grows to the next multiple of ``step`` (for square
    matrices, where doubling could overshoot memory by a factor of four).
    """
    shape = list(arr.shape)
    if all(shape[a] >= n for a in axes):
        return arr
    for a in axes:
        shape[a] = -(-n // step) * step if step else max(n, 2 * shape[a], 16)
    out = np.zeros(shape, dtype=arr.dtype)
    out[tuple(slice(0, s) for s in arr.shape)] = arr
    return out


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
