"""Event sources: files in, schema events (and SourceErrors) out, in order."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from schemas.events import CatalogItem, Impression, Interaction
from streams.sources import (
    SourceError,
    SourceFormatError,
    detect_format,
    read_events,
    read_jsonl,
    read_movielens,
    read_rees46,
    synthetic,
    write_jsonl,
)

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("KAPPAREC_DATA_DIR", REPO / ".." / "shared" / "data"))
REES46_HEAD = DATA_DIR / "rees46-multicategory-2019oct-head" / "2019-Oct_head17433.csv"
HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
REES46_ROWS = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s1",
    "2019-10-01 00:00:01 UTC,cart,44600062,2103807459595387724,,shiseido,35.79,541312140,s1",
    "not a time,view,1,2,,,1.0,3,s2",
    "2019-10-01 00:00:02 UTC,purchase,1307067,2053013558920217191,computers.notebook,lenovo,"
    "251.74,550050854,s3",
    "2019-10-01 00:00:03 UTC,view,44600062,2103807459595387724,beauty.skin,shiseido,30.00,7,",
    "2019-10-01 00:00:04 UTC,teleport,1,2,,,1.0,3,s2",
    "2019-10-01 00:00:05 UTC,view,1,2",
]


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


@pytest.fixture
def rees46_file(tmp_path: Path) -> Path:
    return write(tmp_path / "events.csv", [HEADER, *REES46_ROWS])


def test_rees46_maps_rows_to_catalog_then_interaction(rees46_file: Path) -> None:
    out = list(read_rees46(rees46_file))
    kinds = [type(r).__name__ for r in out]
    assert kinds == [
        "CatalogItem", "Interaction",  # first sight of 44600062
        "Interaction",  # cart, same catalog fields
        "SourceError",  # bad time
        "CatalogItem", "Interaction",  # first sight of 1307067
        "CatalogItem", "Interaction",  # 44600062 changed category and price
        "SourceError", "SourceError",  # unknown type, too few fields
    ]  # fmt: skip
    first, view = out[0], out[1]
    assert isinstance(first, CatalogItem) and isinstance(view, Interaction)
    assert first == CatalogItem(
        item_id="44600062", ts=1_569_888_000_000, title="Shiseido item 44600062",
        category="cat:2103807459595387724", brand="shiseido", price=35.79,
    )  # fmt: skip
    assert (view.type, view.user_id, view.item_id, view.ts) == (
        "view", "541312140", "44600062", 1_569_888_000_000,
    )  # fmt: skip
    assert (view.session_id, view.price) == ("s1", 35.79)
    assert [r.type for r in out if isinstance(r, Interaction)] == [
        "view", "add_to_cart", "purchase", "view",
    ]  # fmt: skip


def test_rees46_reemits_catalog_when_fields_change(rees46_file: Path) -> None:
    items = [r for r in read_rees46(rees46_file) if isinstance(r, CatalogItem)]
    changed = items[-1]
    assert (changed.item_id, changed.category, changed.price) == ("44600062", "beauty.skin", 30.0)
    assert changed.title == "Shiseido skin 44600062"
    assert items[1].title == "Lenovo notebook 1307067"


def test_rees46_reports_bad_rows_with_line_and_reason(rees46_file: Path) -> None:
    errors = [r for r in read_rees46(rees46_file) if isinstance(r, SourceError)]
    assert [(e.line, e.reason) for e in errors] == [
        (4, "bad_time"), (7, "unknown_event_type"), (8, "wrong_field_count"),
    ]  # fmt: skip
    assert errors[0].raw == REES46_ROWS[2]
    assert errors[0].source == str(rees46_file)


def test_rees46_ids_are_deterministic_and_unique(rees46_file: Path) -> None:
    def ids() -> list[str]:
        return [r.event_id for r in read_rees46(rees46_file) if isinstance(r, Interaction)]

    assert ids() == ids()
    assert len(set(ids())) == 4
    empty_session = [r for r in read_rees46(rees46_file) if isinstance(r, Interaction)][-1]
    assert empty_session.session_id is None


def test_rees46_rejects_non_utf8_row_and_keeps_going(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(f"{HEADER}\n".encode() + b"\xff\xfe,view\n" + f"{REES46_ROWS[0]}\n".encode())
    out = list(read_rees46(path))
    assert isinstance(out[0], SourceError) and out[0].reason == "not_utf8"
    assert isinstance(out[-1], Interaction)


def test_rees46_wrong_header_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFormatError, match="header lacks"):
        list(read_rees46(write(tmp_path / "x.csv", ["a,b,c", "1,2,3"])))


@pytest.mark.skipif(not REES46_HEAD.is_file(), reason=f"{REES46_HEAD} not present")
def test_rees46_real_slice_has_every_row() -> None:
    out = list(read_rees46(REES46_HEAD))
    interactions = [r for r in out if isinstance(r, Interaction)]
    assert len(interactions) == 17_433
    assert not [r for r in out if isinstance(r, SourceError)]
    assert Counter(r.type for r in interactions) == {
        "view": 17_054, "add_to_cart": 165, "purchase": 214,
    }  # fmt: skip
    assert len({r.item_id for r in out if isinstance(r, CatalogItem)}) == 6_492
    assert len({r.event_id for r in interactions}) == 17_433


def _movielens(root: Path) -> Path:
    folder = root / "ml-100k"
    folder.mkdir()
    genres = ["0"] * 19
    toy = genres.copy()
    toy[3] = toy[4] = "1"  # Animation, Children's
    write(
        folder / "u.item",
        [
            "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(toy),
            "2|Café Noir (1996)|01-Jan-1996||http://y|" + "|".join(genres),
            "3|broken line",
        ],
        encoding="latin-1",
    )
    write(folder / "u.data", ["7\t1\t5\t900000002", "8\t2\t3\t900000001", "9\t1\tx\t1"])
    return root


def test_movielens_catalog_first_then_ratings_in_time_order(tmp_path: Path) -> None:
    out = list(read_movielens(_movielens(tmp_path)))
    items = [r for r in out if isinstance(r, CatalogItem)]
    errors = [r for r in out if isinstance(r, SourceError)]
    ratings = [r for r in out if isinstance(r, Interaction)]
    assert out[: len(items)] == items
    assert [(i.item_id, i.title, i.category) for i in items] == [
        ("1", "Toy Story (1995)", "movies.animation"),
        ("2", "Café Noir (1996)", "movies.unknown"),
    ]
    assert all(i.ts == 900_000_001_000 for i in items)
    assert sorted((e.reason, Path(e.source).name) for e in errors) == [
        ("bad_rating", "u.data"), ("wrong_field_count", "u.item"),
    ]  # fmt: skip
    assert [(r.user_id, r.item_id, r.type, r.ts) for r in ratings] == [
        ("8", "2", "view", 900_000_001_000),
        ("7", "1", "purchase", 900_000_002_000),
    ]
    assert ratings[0].context == {"rating": 3}
    assert ratings[1].event_id == "ml100k:7:1:900000002000"


def test_jsonl_reads_tagged_and_bare_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        [
            '{"kind":"catalog","item_id":"i1","ts":1,"title":"Mug"}',
            '{"event_id":"e1","type":"view","user_id":"u1","item_id":"i1","ts":2}',
            "",
            '{"kind":"impression","event_id":"e2","request_id":"r1","user_id":"u1",'
            '"items":["i1","i2"],"ts":3}',
            "not json",
            '{"kind":"interaction","event_id":"e3","type":"teleport","user_id":"u","item_id":"i","ts":4}',
            '{"kind":"refund","event_id":"e4"}',
            '{"event_id":"e5","type":"view","item_id":"i1","ts":5}',
        ],
    )
    out = list(read_jsonl(path))
    assert out[0] == CatalogItem(item_id="i1", ts=1, title="Mug")
    assert out[1] == Interaction(event_id="e1", type="view", user_id="u1", item_id="i1", ts=2)
    assert isinstance(out[2], Impression) and out[2].items == ("i1", "i2")
    errors = [(e.line, e.reason) for e in out if isinstance(e, SourceError)]
    assert errors == [
        (5, "not_json"),
        (6, "unknown_type"),
        (7, "unknown_kind"),
        (8, "missing_field"),
    ]


def test_jsonl_round_trips_what_write_jsonl_wrote(tmp_path: Path) -> None:
    events = list(synthetic(20, 10, 50, seed=3))
    events.append(Impression(event_id="x", request_id="r", user_id="u1", items=("i1",), ts=9))
    path = tmp_path / "out.jsonl"
    assert write_jsonl(path, events) == len(events)
    assert list(read_jsonl(path)) == events


def test_synthetic_same_seed_same_events() -> None:
    assert list(synthetic(50, 30, 500, seed=7)) == list(synthetic(50, 30, 500, seed=7))
    assert list(synthetic(50, 30, 500, seed=7)) != list(synthetic(50, 30, 500, seed=8))


def test_synthetic_shape() -> None:
    out = list(synthetic(200, 100, 5_000, seed=1, start_ts_ms=1_000))
    catalog, clicks = out[:100], out[100:]
    assert all(isinstance(c, CatalogItem) for c in catalog)
    assert all(isinstance(c, Interaction) for c in clicks)
    interactions = [c for c in clicks if isinstance(c, Interaction)]
    assert len(interactions) == 5_000
    ts = [c.ts for c in interactions]
    assert ts == sorted(ts) and ts[0] >= 1_000
    assert {c.item_id for c in interactions} <= {c.item_id for c in catalog}
    types = Counter(c.type for c in interactions)
    assert types["view"] > types["add_to_cart"] > 0 and types["purchase"] > 0
    # Zipf-like: the top 10% of items take a large share of views.
    views = Counter(c.item_id for c in interactions if c.type == "view")
    top = sum(n for _, n in views.most_common(10))
    assert top > 0.3 * sum(views.values())
    assert len({c.event_id for c in interactions}) == 5_000


def test_synthetic_purchases_follow_a_cart_in_the_same_session() -> None:
    carted: set[tuple[str | None, str]] = set()
    for event in synthetic(100, 50, 3_000, seed=5):
        if isinstance(event, Interaction) and event.type == "add_to_cart":
            carted.add((event.session_id, event.item_id))
        elif isinstance(event, Interaction) and event.type == "purchase":
            assert (event.session_id, event.item_id) in carted


def test_detect_format(tmp_path: Path, rees46_file: Path) -> None:
    assert detect_format(rees46_file) == "rees46"
    assert detect_format(_movielens(tmp_path)) == "movielens"
    jsonl = write(tmp_path / "e.jsonl", ['{"kind":"catalog","item_id":"i","ts":1}'])
    assert detect_format(jsonl) == "jsonl"
    assert [type(r) for r in read_events(jsonl)] == [CatalogItem]
    with pytest.raises(SourceFormatError):
        detect_format(write(tmp_path / "x.txt", ["hello"]))
    with pytest.raises(SourceFormatError):
        detect_format(tmp_path / "missing")


def test_a_byte_order_mark_before_the_first_line_is_not_part_of_it(
    tmp_path: Path, rees46_file: Path
) -> None:
    """Spreadsheet tools often save UTF-8 with a BOM; the header and first record stay
    readable, with the same records as without it."""
    csv_bom = tmp_path / "bom.csv"
    csv_bom.write_bytes(b"\xef\xbb\xbf" + rees46_file.read_bytes())
    assert detect_format(csv_bom) == "rees46"
    events = [e for e in read_events(csv_bom) if not isinstance(e, SourceError)]
    assert events == [e for e in read_rees46(rees46_file) if not isinstance(e, SourceError)]
    assert events[0] == next(read_rees46(rees46_file))
    jsonl_bom = tmp_path / "bom.jsonl"
    jsonl_bom.write_bytes(b'\xef\xbb\xbf{"kind":"catalog","item_id":"i","ts":1}\n')
    assert detect_format(jsonl_bom) == "jsonl"
    assert [type(r) for r in read_events(jsonl_bom)] == [CatalogItem]
