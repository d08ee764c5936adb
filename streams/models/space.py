"""Dense numbering of item ids and growable arrays indexed by it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class ItemSpace:
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


def grown(arr: npt.NDArray[Any], n: int, axes: tuple[int, ...] = (0,)) -> npt.NDArray[Any]:
    """``arr`` zero-padded so each of ``axes`` holds at least ``n`` (capacity doubles)."""
    shape = list(arr.shape)
    if all(shape[a] >= n for a in axes):
        return arr
    for a in axes:
        shape[a] = max(n, 2 * shape[a], 64)
    out = np.zeros(shape, dtype=arr.dtype)
    out[tuple(slice(0, s) for s in arr.shape)] = arr
    return out
