"""Declarative field specs: one description drives both validation and the JSON Schema docs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import DecodeError
from schemas.ids import FORBIDDEN_PATTERN, ID_RULE, MAX_ID_LEN, id_problem

MAX_TS_MS = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event: its JSON type, whether it is required, and its limits."""

    name: str
    # "id", "label" (an id that may be empty), "str", "int", "ts", "number", "bool",
    # "object", "id_list", "list" (a JSON array, items not checked)
    kind: str
    required: bool = False
    doc: str = ""
    enum: tuple[str, ...] = ()
    max_len: int = 256
    minimum: float | None = None
    max_items: int = 200

    def check(self, value: Any) -> Any:
        """Return ``value`` if it fits this field, else raise :class:`DecodeError`."""
        checker = _CHECKERS[self.kind]
        return checker(self, value)

    def json_schema(self) -> dict[str, Any]:
        """This field as a JSON Schema property."""
        schema: dict[str, Any] = dict(_JSON_TYPES[self.kind])
        if self.kind in ("id", "label", "str"):
            schema["maxLength"] = self.max_len
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.kind in ("id_list", "list"):
            schema["maxItems"] = self.max_items
        if self.doc:
            schema["description"] = self.doc
        if not self.required:  # validate() reads null as absent; DeadLetter writes nulls
            schema["type"] = [schema["type"], "null"]
            if self.enum:
                schema["enum"] = [*self.enum, None]
        return schema


def _wrong(field: Field, expected: str, value: Any) -> DecodeError:
    return DecodeError("wrong_type", f"expected {expected}, got {type(value).__name__}", field.name)


def _check_id(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(field, "a string id", value)
    problem = id_problem(value)
    if problem is not None:
        raise DecodeError("bad_value", f"id {problem}; an id is {ID_RULE}", field.name)
    return value


def _check_label(field: Field, value: Any) -> str:
    # A label (category) is a key segment too, so it obeys the id rule, but may be empty.
    if not isinstance(value, str):
        raise _wrong(field, "a string", value)
    problem = id_problem(value, min_len=0, max_len=field.max_len)
    if problem is not None:
        raise DecodeError("bad_value", f"{problem}; see the id rule", field.name)
    return value


def _check_str(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(field, "a string", value)
    if len(value) > field.max_len:
        raise DecodeError("bad_value", f"longer than {field.max_len} characters", field.name)
    if field.enum and value not in field.enum:
        code = "unknown_type" if field.name == "type" else "bad_value"
        raise DecodeError(code, f"{value!r} is not one of {', '.join(field.enum)}", field.name)
    return value


def _check_int(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(field, "an integer", value)
    if field.minimum is not None and value < field.minimum:
        raise DecodeError("bad_value", f"must be >= {field.minimum:g}", field.name)
    return value


def _check_ts(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(field, "integer epoch milliseconds", value)
    if not 0 <= value <= MAX_TS_MS:
        raise DecodeError("bad_value", "epoch milliseconds out of range", field.name)
    return value


def _check_number(field: Field, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(field, "a number", value)
    if value != value or value in (float("inf"), float("-inf")):
        raise DecodeError("bad_value", "must be finite", field.name)
    if field.minimum is not None and value < field.minimum:
        raise DecodeError("bad_value", f"must be >= {field.minimum:g}", field.name)
    return float(value)


def _check_bool(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong(field, "true or false", value)
    return value


def _check_object(field: Field, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(field, "an object", value)
    return value


def _check_list(field: Field, value: Any, expected: str = "a list") -> list[Any]:
    if not isinstance(value, list):
        raise _wrong(field, expected, value)
    if len(value) > field.max_items:
        raise DecodeError("bad_value", f"more than {field.max_items} items", field.name)
    return value


def _check_id_list(field: Field, value: Any) -> tuple[str, ...]:
    return tuple(_check_id(field, v) for v in _check_list(field, value, "a list of ids"))


_CHECKERS = {
    "id": _check_id,
    "label": _check_label,
    "str": _check_str,
    "int": _check_int,
    "ts": _check_ts,
    "number": _check_number,
    "bool": _check_bool,
    "object": _check_object,
    "id_list": _check_id_list,
    "list": _check_list,
}

# "No forbidden character anywhere" (schemas.ids), as the negation of an unanchored search:
# an anchored pattern ending in `$` would accept a trailing newline in Python's `re`.
_NO_CONTROL = {"not": {"type": "string", "pattern": FORBIDDEN_PATTERN}}
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, **_NO_CONTROL},
    "label": {"type": "string", **_NO_CONTROL},
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "ts": {"type": "integer", "minimum": 0, "maximum": MAX_TS_MS},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {"type": "object"},
    "list": {"type": "array"},
    "id_list": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN, **_NO_CONTROL},
    },
}


@dataclass(frozen=True, slots=True)
class Schema:
    """A versioned record type: its fields, in order."""

    name: str
    version: int
    fields: tuple[Field, ...]
    doc: str = ""

    def validate(self, obj: Any) -> dict[str, Any]:
        """Checked field values of ``obj`` (a decoded JSON value), keyed by field name."""
        if not isinstance(obj, dict):
            raise DecodeError("not_object", f"expected a JSON object, got {type(obj).__name__}")
        version = obj.get("v", self.version)
        if isinstance(version, bool) or version != self.version:
            raise DecodeError(
                "unsupported_version", f"{self.name} v{version!r} is not supported", "v"
            )
        out: dict[str, Any] = {}
        for f in self.fields:
            value = obj.get(f.name)
            if value is None:
                if f.required:
                    raise DecodeError("missing_field", "required field is missing", f.name)
                continue
            out[f.name] = f.check(value)
        return out

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) document of this record type."""
        props: Mapping[str, Any] = {
            "v": {"const": self.version, "description": "schema version (optional)"},
            **{f.name: f.json_schema() for f in self.fields},
        }
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"kapparec/{self.name}/v{self.version}",
            "title": f"{self.name} v{self.version}",
            "description": self.doc,
            "type": "object",
            "properties": dict(props),
            "required": [f.name for f in self.fields if f.required],
        }
