"""Table writes with an explicit changelog partition.

Faust picks a changelog partition from the stream's *current* event, which is wrong
when one batch spans several partitions. Writing the value and its changelog record
ourselves keeps each key's changelog on the partition that owns the key, so recovery
after a restart or rebalance hands the state to the right worker.
"""

from __future__ import annotations

from typing import Any


def put(table: Any, partition: int, key: str, value: Any) -> None:
    """Set ``table[key] = value`` and log it to changelog ``partition``."""
    table.data[key] = value
    table.send_changelog(partition, key, value)
