"""The blend-cost harness times the lists it says it builds, on the REES46 slice."""

from __future__ import annotations

import os
from pathlib import Path

from streams.evaluation.blend_cost import measure

DATA_DIR = Path(
    os.environ.get(
        "KAPPAREC_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    )
)


def test_blend_cost_builds_the_same_lists_every_time() -> None:
    a = measure("rees46", DATA_DIR, users=30, repeat=2)
    b = measure("rees46", DATA_DIR, users=30, repeat=1)
    assert a["users"] == b["users"] == 30
    assert a["us_per_list"] > 0 and a["neighbour_votes_per_list"] > 0
    assert a["digest"] == b["digest"]  # same data, same lists: the digest is a fingerprint
    c = measure("rees46", DATA_DIR, users=29, repeat=1)
    assert c["digest"] != a["digest"]  # and it depends on the lists
