"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json."""

from __future__ import annotations

import functools
from typing import Any

from schemas.ids import ID_RULE, MAX_ID_LEN, forbidden_class

# The id rule of events (schemas.ids); its \uXXXX escapes read the same in ECMA-262.
ID_PATTERN = f"^[^{forbidden_class()}]{{1,{MAX_ID_LEN}}}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "422": _json(_ref("Error"), "A parameter is invalid; `parameter` names it."),
    "503": _json(_ref("Error"), "Redis is unreachable or no version is active."),
}


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"{what} ({ID_RULE}; percent-encode '/').",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": ID_PATTERN},
    }


_K = {
    "name": "k",
    "in": "query",
    "required": False,
    "description": "How many items to return.",
    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
}

_ITEM_ROW = {
    "type": "array",
    "description": "[item_id, score, reason]; reason codes: b:<item> bought with, "
    "v:<item> viewed with, c:<category> trending in the category, t trending.",
    "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "string"}],
    "minItems": 3,
    "maxItems": 3,
}

_READ_RESULT = {
    "type": "object",
    "required": ["version", "sources", "items"],
    "properties": {
        "user_id": {"type": "string"},
        "item_id": {"type": "string"},
        "category": {"type": "string"},
        "version": {"type": "integer", "description": "Output version that was read."},
        "sources": {
            "type": "array",
            "items": {"enum": ["user", "recent", "bought", "viewed", "similar", "trending"]},
            "description": "Steps of the fallback chain that contributed items, in order.",
        },
        "items": {"type": "array", "items": _ref("ItemRow")},
        "variant": {"type": ["string", "null"]},
        "computed_at": {"type": ["integer", "null"], "description": "Epoch ms."},
        "event_ts": {"type": ["integer", "null"], "description": "Event time, epoch ms."},
        "degraded": {
            "type": "boolean",
            "description": "Present (true) when Redis could not be reached: the items are "
            "the last trending list this server read.",
        },
    },
}

_HISTOGRAM = {
    "type": "object",
    "required": ["count", "sum", "p50", "p99", "buckets"],
    "properties": {
        "count": {"type": "integer"},
        "sum": {"type": "number"},
        "p50": {"type": ["number", "null"]},
        "p99": {"type": ["number", "null"]},
        "buckets": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": ["number", "string"]}, {"type": "integer"}],
            },
        },
    },
}

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}

_OVERVIEW = {
    "type": "object",
    "required": ["now_ms", "namespace", "version", "events", "dead_letters", "freshness_s"],
    "properties": {
        "now_ms": {"type": "integer"},
        "namespace": {"type": "string"},
        "version": {"type": ["integer", "null"]},
        "events": {**_COUNTS, "description": "Interactions ingested by type (totals)."},
        "dead_letters": {**_COUNTS, "description": "Dead-lettered records by reason."},
        "freshness_s": _ref("Histogram"),
        "publish_s": _ref("Histogram"),
        "tables": {**_COUNTS, "description": "Keys held in worker tables, summed."},
        "redis_keys": {"type": "integer"},
        "lag": {
            "type": ["object", "null"],
            "properties": {
                "topics": _COUNTS,
                "total": {"type": "integer"},
                "error": {"type": "string"},
            },
        },
        "ab": {"type": ["object", "null"], "description": "The A/B report as written."},
        "alerts": {"type": "array", "items": {"type": "object"}},
    },
}

_USER = {
    "type": "object",
    "required": ["user_id", "recent", "list", "catalog"],
    "properties": {
        "user_id": {"type": "string"},
        "recent": {"type": "array", "items": {"type": "string"}},
        "list": _ref("ReadResult"),
        "catalog": {"type": "object", "additionalProperties": {"type": "object"}},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "parameter": {"type": "string"},
    },
}


def _get(summary: str, params: list[dict[str, Any]], ok: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": {"200": ok, **_ERRORS}}}


def _plain(summary: str, media: str) -> dict[str, Any]:
    body = {"description": summary, "content": {media: {"schema": {"type": "string"}}}}
    return {"get": {"summary": summary, "responses": {"200": body}}}


@functools.cache
def spec() -> dict[str, Any]:
    """The whole document."""
    read = _json(_ref("ReadResult"), "The list, best first.")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kapparec read API",
            "version": "1",
            "description": "Recommendation lists served from Redis with a fallback chain: "
            "user list -> lists of the user's recent items -> trending.",
        },
        "paths": {
            "/recommendations/{user_id}": _get(
                "A user's recommendations.",
                [
                    _path_id("user_id", "User id"),
                    _K,
                    {
                        "name": "recent",
                        "in": "query",
                        "required": False,
                        "description": "Comma-separated item ids from the current session "
                        "(at most 20), used as anchors when the user's list is short.",
                        "schema": {"type": "string"},
                    },
                ],
                read,
            ),
            "/items/{item_id}/also-bought": _get(
                "Customers who bought this also bought (then also viewed, then trending).",
                [_path_id("item_id", "Item id"), _K],
                read,
            ),
            "/items/{item_id}/also-viewed": _get(
                "Customers who viewed this also viewed (then also bought, then trending).",
                [_path_id("item_id", "Item id"), _K],
                read,
            ),
            "/items/{item_id}/similar": _get(
                "Items whose vectors are nearest this item's (content from the catalogue "
                "record, so a new item has them at once), then also bought, also viewed, "
                "trending.",
                [_path_id("item_id", "Item id"), _K],
                read,
            ),
            "/trending": _get(
                "Trending items overall or in a category.",
                [
                    {
                        "name": "category",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 256},
                    },
                    _K,
                ],
                read,
            ),
            "/health": _get(
                "Redis answers and a version is active.",
                [],
                _json(
                    {
                        "type": "object",
                        "required": ["status", "version"],
                        "properties": {"status": {"const": "ok"}, "version": {"type": "integer"}},
                    },
                    "Healthy.",
                ),
            ),
            "/metrics": _plain("Prometheus text exposition.", "text/plain"),
            "/dashboard": _plain("The dashboard page.", "text/html"),
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
            "/api/overview": _get(
                "Dashboard figures.", [], _json(_ref("Overview"), "Figures of the active version.")
            ),
            "/api/users/{user_id}": _get(
                "User explorer: recent history and current list with catalogue records.",
                [_path_id("user_id", "User id"), _K],
                _json(_ref("UserExplorer"), "The user's data."),
            ),
        },
        "components": {
            "schemas": {
                "ItemRow": _ITEM_ROW,
                "ReadResult": _READ_RESULT,
                "Histogram": _HISTOGRAM,
                "Overview": _OVERVIEW,
                "UserExplorer": _USER,
                "Error": _ERROR,
            }
        },
    }
