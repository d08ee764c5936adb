"""JSON Schema documents of every event contract, generated from the field specs.

The files under ``schemas/json/`` are committed so that producers in other languages can
validate against them; a unit test fails when they drift from the code. Regenerate with::

    python -m schemas.docs
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from schemas.dead_letter import DEAD_LETTER
from schemas.events import ALL_SCHEMAS
from schemas.fields import Schema

JSON_DIR = Path(__file__).parent / "json"
DOCUMENTED: tuple[Schema, ...] = (*ALL_SCHEMAS, DEAD_LETTER)


def file_name(schema: Schema) -> str:
    """``<name>.v<version>.json``."""
    return f"{schema.name}.v{schema.version}.json"


def render(schema: Schema) -> bytes:
    """The JSON Schema document of ``schema``: pretty-printed, sorted keys, trailing newline."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return orjson.dumps(schema.json_schema(), option=options) + b"\n"


def write_json_schemas(out_dir: Path) -> list[Path]:
    """Write one JSON Schema file per documented schema into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for schema in DOCUMENTED:
        path = out_dir / file_name(schema)
        path.write_bytes(render(schema))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Regenerate the committed files (or write them to the directory given)."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else JSON_DIR
    for path in write_json_schemas(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
