"""The impression/interaction join: by request id, by window, out of order, closing, replay."""

from __future__ import annotations

import random
import re

import orjson
import pytest

from schemas.events import Impression, Interaction
from streams.attribution import JoinState, source_of
from streams.drift import CTR, DriftMonitor
from streams.experiment_report import Totals, encode_groups, observation

W = 10_000  # window, ms


def imp(rid: str, user: str, items: list[str], ts: int, variant: str = "A") -> Impression:
    sources = tuple("t" if i.startswith("t") else f"b:{i}" for i in items)
    return Impression(f"e-{rid}", rid, user, tuple(items), ts, variant, "home", sources)


def act(user: str, item: str, ts: int, kind: str = "click", rid: str | None = None) -> Interaction:
    return Interaction(f"e-{user}-{item}-{ts}-{kind}", kind, user, item, ts, request_id=rid)


def tags(records: list[list[object]]) -> list[object]:
    return [r[0] for r in records]


def test_source_names() -> None:
    assert [source_of(r) for r in ["b:1", "v:x:y", "c:shoes", "t", "ann:3"]] == [
        "bought", "viewed", "category", "trending", "ann",
    ]  # fmt: skip


def test_click_joins_by_request_id() -> None:
    j = JoinState(W)
    assert j.impression(imp("r1", "u", ["x", "t1"], 1000)) == [["imp", "A", ["bought", "trending"]]]
    assert j.interaction(act("u", "t1", 2000, rid="r1")) == [["clk", "A", "trending", True]]
    # a second click on the same slot is not a new click; a purchase converts once
    assert j.interaction(act("u", "t1", 2500, rid="r1")) == []
    assert j.interaction(act("u", "x", 2600, "purchase", "r1")) == [
        ["clk", "A", "bought", False], ["cnv", "A"],
    ]  # fmt: skip
    assert j.interaction(act("u", "x", 2700, "purchase", "r1")) == []


def test_window_join_takes_the_latest_list_within_the_window() -> None:
    j = JoinState(W)
    j.impression(imp("r1", "u", ["x"], 1000, "A"))
    j.impression(imp("r2", "u", ["x"], 3000, "B"))
    # impressions have not reached 4000 yet: a list shown before the click may be late
    assert j.interaction(act("u", "x", 4000)) == []
    assert j.impression(imp("r3", "v", ["y"], 4000)) == [
        ["imp", "A", ["bought"]], ["clk", "B", "bought", True],
    ]  # fmt: skip
    # within the impressions' time: at once
    assert j.interaction(act("v", "y", 4000)) == [["clk", "A", "bought", True]]
    # outside the window of either list: not attributed (held, then dropped)
    j.interaction(act("u", "x", 3000 + W + 1))
    assert [r for r in j.impression(imp("r4", "v", ["y"], 3000 + W + 1)) if r[0] == "clk"] == []
    # a plain view without request id is not a click-through
    assert j.interaction(act("u", "x", 3500, "view")) == []


def test_a_click_without_request_id_goes_to_the_same_list_whatever_the_interleaving() -> None:
    """Impressions and interactions are two topics: Kafka orders each, not the two.
    Every interleaving that keeps each topic's order gives the same records."""
    shown = [imp("r1", "u", ["x", "y"], 1000, "A"), imp("r2", "u", ["x"], 3000, "B"),
             imp("r3", "v", ["x"], 3500, "A"), imp("r4", "w", ["z"], 9000, "B")]  # fmt: skip
    acted = [act("u", "x", 2000), act("u", "x", 4000), act("v", "x", 3600, "purchase"),
             act("u", "y", 5000), act("w", "q", 9500)]  # fmt: skip
    rng = random.Random(7)
    seen = set()
    for _ in range(200):
        order = [0] * len(shown) + [1] * len(acted)
        rng.shuffle(order)
        j, queues, out = JoinState(W), [list(shown), list(acted)], []
        for side in order:
            ev = queues[side].pop(0)
            out += j.impression(ev) if side == 0 else j.interaction(ev)
        seen.add(repr(sorted(map(repr, (r for r in out if r[0] in ("clk", "cnv"))))))
    assert len(seen) == 1
    (only,) = seen
    assert "'clk', 'B', 'bought', True" in only and "'clk', 'A', 'bought', True" in only


def test_click_before_its_impression_is_held_then_joined() -> None:
    j = JoinState(W)
    assert j.interaction(act("u", "x", 2000, rid="r1")) == []
    assert j.impression(imp("r1", "u", ["x"], 1000)) == [
        ["imp", "A", ["bought"]], ["clk", "A", "bought", True],
    ]  # fmt: skip


def test_lists_close_when_both_inputs_pass_the_window() -> None:
    j = JoinState(W)
    j.impression(imp("r1", "u", ["x"], 1000))
    j.impression(imp("r2", "v", ["y"], 1500))
    j.interaction(act("u", "x", 1200, rid="r1"))
    # impressions moved on, but interactions are still at 1200: nothing closes yet
    assert "fin" not in tags(j.impression(imp("r3", "w", ["z"], 1000 + W + 5000)))
    out = j.interaction(act("w", "q", 1000 + W + 600))
    assert [r for r in out if r[0] == "fin"] == [["fin", "A", 1, 1000], ["fin", "A", 0, 1500]]
    assert set(j.shown) == {"r3"}
    assert j.by_user == {"w": ["r3"]}


def test_held_interactions_expire() -> None:
    j = JoinState(W)
    j.interaction(act("u", "x", 1000, rid="never"))
    j.impression(imp("r9", "v", ["y"], 1000 + 3 * W))
    j.interaction(act("v", "q", 1000 + 3 * W))
    assert "u" not in j.held  # the fresh, unmatched click of v is still held
    assert [h.item_id for h in j.held["v"]] == ["q"]


def test_redelivered_offsets_are_skipped_and_state_round_trips() -> None:
    j = JoinState(W)
    assert j.fresh("imp", 0) and j.fresh("imp", 1) and not j.fresh("imp", 1)
    j.impression(imp("r1", "u", ["x"], 1000))
    j.interaction(act("u", "x", 900, rid="nope"))
    back = JoinState.from_dict(j.to_dict())
    assert back.to_dict() == j.to_dict()
    assert back.by_user == {"u": ["r1"]}
    assert back.interaction(act("u", "x", 1100, rid="r1")) == [["clk", "A", "bought", True]]


def test_totals_count_once_per_offset_and_report_the_contract_shape() -> None:
    j = JoinState(W)
    groups = [
        ["imp", 0, j.impression(imp("r1", "u", ["x", "t1"], 1000, "A"))],
        ["imp", 1, j.impression(imp("r2", "v", ["y"], 1000, "B"))],
        ["int", 0, j.interaction(act("v", "y", 1100, "purchase", "r2"))],
    ]
    t = Totals()
    t.apply_message(encode_groups(3, groups))
    t.apply_message(encode_groups(3, groups))  # the same batch redone after a restart
    report = t.report(("A", "B"), "z", 0.05, 123)
    assert set(report) == {"variants", "test", "by_source", "updated_ms"}
    assert report["variants"]["A"] == {
        "impressions": 1, "clicks": 0, "conversions": 0, "ctr": 0.0,
        "ctr_ci": [0.0, report["variants"]["A"]["ctr_ci"][1]],
    }  # fmt: skip
    assert report["variants"]["B"]["clicks"] == 1 and report["variants"]["B"]["conversions"] == 1
    assert set(report["test"]) == {"method", "p_value", "significant", "leader"}
    assert report["test"]["leader"] is None  # one list each proves nothing
    assert report["by_source"] == {
        "bought": {"impressions": 2, "clicks": 1, "ctr": 0.5},
        "trending": {"impressions": 1, "clicks": 0, "ctr": 0.0},
    }
    assert Totals.from_dict(t.to_dict()) == t


def test_drift_hook_fires_on_a_ctr_shift_and_not_before() -> None:
    """Closed lists feed the CTR detector; ranker losses use the same hook."""
    rng = random.Random(3)
    monitor = DriftMonitor(delta=0.002)
    t = Totals()
    alerts = []
    for i in range(4000):
        p = 0.3 if i < 2000 else 0.05
        records = [["fin", "B", int(rng.random() < p), i]]
        for det, key, value, ts in t.apply(records):
            if (a := monitor.observe(det, key, value, ts)) is not None:
                alerts.append(a)
    assert alerts, "a drop from 30% to 5% CTR must be detected"
    assert all(a.detector == CTR and a.variant == "B" for a in alerts)
    assert 2000 <= alerts[0].ts_ms < 2400, alerts[0]
    # the ranker's loss goes through the same records and detectors
    obs = t.apply([observation("ranker_loss", "A", 0.7, 5)])
    assert obs == [("ranker_loss", "A", 0.7, 5)]


def test_a_drift_alert_compares_the_part_dropped_with_the_part_kept() -> None:
    rng = random.Random(3)
    monitor = DriftMonitor(delta=0.002)
    values: list[float] = []
    for i in range(4000):
        values.append(float(rng.random() < (0.3 if i < 2000 else 0.05)))
        if (alert := monitor.observe(CTR, "B", values[-1], i)) is not None:
            break
    assert alert is not None
    found = re.search(
        r"mean (\d\.\d+) over the (\d+) observations before -> (\d\.\d+) over the latest (\d+)",
        alert.message,
    )
    assert found, alert.message
    before, n_before, after, n_after = (float(g) for g in found.groups())
    assert n_before + n_after == len(values)
    assert before == pytest.approx(sum(values[: int(n_before)]) / n_before, abs=1e-4)
    assert after == pytest.approx(sum(values[int(n_before) :]) / n_after, abs=1e-4)
    assert before > after


def test_drift_stays_quiet_on_a_stable_stream() -> None:
    rng = random.Random(4)
    monitor = DriftMonitor(delta=0.002)
    fired = [monitor.observe(CTR, "A", float(rng.random() < 0.2), i) for i in range(4000)]
    assert not any(fired)


def test_lists_without_a_variant_are_reported_and_not_tested() -> None:
    t = Totals()
    t.variants.update({"A": [1000, 100, 0], "B": [1000, 100, 0], "none": [1000, 500, 0]})
    report = t.report(("A", "B"), "z", 0.05, 123)
    assert report["variants"]["none"]["clicks"] == 500  # still shown
    assert report["test"]["leader"] is None and not report["test"]["significant"]
    assert report["test"]["p_value"] == 1.0  # A and B alike: one pair, no correction


def test_a_click_naming_its_list_counts_only_within_the_window() -> None:
    """Outside the window it would count or not depending on whether the list had
    closed yet, i.e. on how the two topics interleave."""
    j = JoinState(W)
    j.impression(imp("r1", "u", ["x"], 1000))
    assert j.interaction(act("u", "x", 1000 + W + 1, rid="r1")) == []
    assert j.interaction(act("u", "x", 999, rid="r1")) == []  # before the list
    assert j.interaction(act("u", "x", 1000 + W, rid="r1")) != []


def test_a_state_saved_whole_reads_back_as_the_header_and_user_records_do() -> None:
    """The earlier form kept a partition's whole state in one record."""
    j = JoinState(W)
    j.impression(imp("r1", "u", ["x"], 1000))
    j.impression(imp("r2", "v", ["y"], 2000))
    j.interaction(act("u", "q", 900, rid="nope"))
    j.interaction(act("w", "x", 5000))  # waits for the impressions to reach 5000
    whole = JoinState.from_records(j.to_dict(), [])
    parts = JoinState.from_records(j.header(), [r for r in j.take_dirty().values() if r])
    for back in (whole, parts):
        assert back.to_dict() == j.to_dict()
        assert back.by_user == j.by_user and back.early_count == {"w": 1}
    # The first save after reading the earlier form writes every user's record, before
    # the header without lists replaces the whole one.
    saved = {u: r for u, r in whole.take_dirty().items() if r}
    assert set(saved) == {"u", "v", "w"}
    again = JoinState.from_records(whole.header(), saved.values())
    assert again.to_dict() == j.to_dict()


def _saved_and_read_back(j: JoinState) -> JoinState:
    return JoinState.from_records(j.header(), [r for r in j.take_dirty().values() if r])


def test_a_state_read_back_closes_lists_in_the_order_they_arrived() -> None:
    """Lists close in arrival order, stopping at the first still open: read back in
    another order, a late click would count or not depending on a restart."""
    outcomes = []
    for restart in (False, True):
        j = JoinState(1_000)
        j.impression(imp("rA", "a", ["x"], 10_000))  # arrives first
        j.impression(imp("rB", "b", ["y"], 5_000))  # shown earlier, arrives later
        j.interaction(act("w", "q", 9_000))  # rA still open: the close stops there
        if restart:
            j = _saved_and_read_back(j)
        out = j.interaction(act("w", "q", 9_001))
        out += j.interaction(act("b", "y", 5_500, rid="rB"))
        outcomes.append(out)
    assert outcomes[0] == outcomes[1] == [["clk", "A", "bought", True]]


def test_a_users_record_stays_under_the_producers_limit() -> None:
    """Ids of 256 characters of 4 bytes each, lists of 100 items, a user clicking away:
    their record must still fit a Kafka record (1,000,000 bytes)."""
    long = "\U0001f600" * 255
    j = JoinState(3_600_000)
    items = [f"{long}{n}" for n in range(100)]
    for n in range(120):
        j.impression(imp(f"{long}{n:03d}", long[:-1] + "u", items, 1_000 + n))
        j.interaction(act(long[:-1] + "u", f"{long}zz{n}", 2_000 + n, rid=f"{long}nope{n}"))
        j.interaction(act(long[:-1] + "u", f"{long}yy{n}", 10**12 + n))  # waits for impressions
    (record,) = [r for r in j.take_dirty().values() if r]
    assert len(orjson.dumps(record)) < 1_000_000
    assert record["s"] and record["h"] and record["e"]  # bounded, not emptied
