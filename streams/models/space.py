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


def grow(
    arr: npt.NDArray[Any],
    n: int,
    axes: tuple[int, ...] = (0,),
    step: int | None = None,
    minimum: int = 16,
) -> npt.NDArray[Any]:
    """``arr`` zero-padded so each of ``axes`` holds at least ``n``.

    Capacity doubles (to at least ``minimum``), or with ``step`` grows to the next multiple
    of ``step`` (for square matrices, where doubling could overshoot memory by a factor of
    four).
    """
    shape = list(arr.shape)
    if all(shape[a] >= n for a in axes):
        return arr
    for a in axes:
        shape[a] = -(-n // step) * step if step else max(n, 2 * shape[a], minimum)
    out = np.zeros(shape, dtype=arr.dtype)
    out[tuple(slice(0, s) for s in arr.shape)] = arr
    return out


def grown(arr: npt.NDArray[Any], n: int, axes: tuple[int, ...] = (0,)) -> npt.NDArray[Any]:
    """:func:`grow` with the online models' minimum capacity of 64."""
    return grow(arr, n, axes, minimum=64)
