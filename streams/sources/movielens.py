"""MovieLens 100K (``u.item`` + ``u.data``) as catalog records, then interactions in time order.

A rating of 4 or 5 becomes a ``purchase`` (strong positive), anything lower a ``view``; the
rating itself is kept in ``context["rating"]``. Catalog records carry the event time of the
first rating so they sort before every interaction on replay. The release year is already
part of each title (``Toy Story (1995)``), the catalog schema has no field of its own for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from schemas.events import PURCHASE, VIEW, CatalogItem, Interaction
from streams.sources.records import SourceError, SourceFormatError

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_ITEM_FIELDS = 5 + len(GENRES)
STRONG_RATING = 4

_Rating = tuple[int, int, str, str, int]  # ts_ms, line, user, item, rating


def movielens_dir(path: str | Path) -> Path:
    """The folder holding ``u.data`` and ``u.item``: ``path`` itself or its ``ml-100k`` child."""
    root = Path(path)
    for candidate in (root, root / "ml-100k"):
        if (candidate / "u.data").is_file() and (candidate / "u.item").is_file():
            return candidate
    raise SourceFormatError(f"{root}: no MovieLens u.data and u.item here or in {root / 'ml-100k'}")


def read_movielens(path: str | Path) -> Iterator[CatalogItem | Interaction | SourceError]:
    """Catalog of every movie, then every rating as an interaction in timestamp order."""
    root = movielens_dir(path)
    ratings: list[_Rating] = []
    errors: list[SourceError] = []
    for record in _read_ratings(root / "u.data"):
        if isinstance(record, SourceError):
            errors.append(record)
        else:
            ratings.append(record)
    # Stable sort: ties on the timestamp keep file order, so the output is deterministic.
    ratings.sort(key=lambda r: r[0])
    catalog_ts = ratings[0][0] if ratings else 0
    yield from _read_items(root / "u.item", catalog_ts)
    yield from errors
    for ts, _line, user, item, rating in ratings:
        yield Interaction(
            event_id=f"ml100k:{user}:{item}:{ts}",
            type=PURCHASE if rating >= STRONG_RATING else VIEW,
            user_id=user,
            item_id=item,
            ts=ts,
            context={"rating": rating},
        )


def genre_category(name: str) -> str:
    """A genre as a dotted category, e.g. ``Sci-Fi`` -> ``movies.sci_fi``."""
    return "movies." + name.lower().replace("'", "").replace("-", "_")


def _read_ratings(path: Path) -> Iterator[_Rating | SourceError]:
    with open(path, encoding="latin-1") as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            problem = _rating_problem(text.split("\t"))
            if problem:
                yield SourceError(line_no, problem[0], text, problem[1], str(path))
                continue
            user, item, rating, seconds = (c.strip() for c in text.split("\t"))
            yield int(seconds) * 1000, line_no, user, item, int(rating)


def _rating_problem(cells: list[str]) -> tuple[str, str] | None:
    if len(cells) != 4:
        return "wrong_field_count", f"{len(cells)} fields, expected 4"
    user, item, rating, seconds = (c.strip() for c in cells)
    if not (user and item):
        return "missing_field", "user or item id is empty"
    if not (rating.isdecimal() and 1 <= int(rating) <= 5):
        return "bad_rating", f"rating {rating!r} is not 1-5"
    if not seconds.isdecimal():
        return "bad_time", f"timestamp {seconds!r} is not Unix seconds"
    return None


def _read_items(path: Path, ts: int) -> Iterator[CatalogItem | SourceError]:
    source = str(path)
    # u.item is latin-1 (accented titles), not UTF-8.
    with open(path, encoding="latin-1") as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            cells = text.split("|")
            if len(cells) != _ITEM_FIELDS or not cells[0].strip():
                detail = f"{len(cells)} fields, expected {_ITEM_FIELDS}, item id first"
                yield SourceError(line_no, "wrong_field_count", text, detail, source)
                continue
            flags = [g for g, flag in zip(GENRES, cells[5:], strict=True) if flag.strip() == "1"]
            yield CatalogItem(
                item_id=cells[0].strip(),
                ts=ts,
                title=cells[1].strip() or None,
                category=genre_category(flags[0] if flags else "unknown"),
            )
