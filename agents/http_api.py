"""The HTTP read API (for frontends that do not talk to Redis), /metrics and the dashboard.

Reads go through :class:`agents.reader.Reader`, so HTTP serves the same fallback chain
as the read helper: user list -> lists of the user's recent items -> trending. Input is
checked before Redis is touched: a bad id or ``k`` is a 422 naming the parameter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from agents.openapi import spec
from agents.publisher import connect
from agents.reader import Reader
from agents.telemetry import HTTP_REQUESTS, HTTP_SECONDS, Telemetry
from streams.settings import Settings

# Same rule as ids in events, so every id the pipeline accepted can be asked for.
ID_RE = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
K_DEFAULT, K_MAX = 10, 100
RECENT_MAX = 20

READER = web.AppKey("reader", Reader)
TELEMETRY = web.AppKey("telemetry", Telemetry)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InvalidParameter(Exception):
    """A request parameter failed validation; answered with 422."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, error: str, detail: str, **extra: Any) -> web.Response:
    return _json({"error": error, "detail": detail, **extra}, status)


def check_id(value: str, parameter: str) -> str:
    """An id of 1-256 characters without control characters."""
    if not ID_RE.fullmatch(value):
        raise InvalidParameter(
            parameter, f"{parameter} must be 1-256 characters without control characters"
        )
    return value


def check_k(request: web.Request) -> int:
    """The ``k`` query parameter: an integer in [1, K_MAX], default K_DEFAULT."""
    raw = request.query.get("k")
    if raw is None:
        return K_DEFAULT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= K_MAX:
        raise InvalidParameter("k", f"k must be an integer between 1 and {K_MAX}")
    return int(raw)


def check_recent(request: web.Request) -> list[str]:
    """Optional ``recent``: comma-separated item ids the caller knows from the session."""
    raw = request.query.get("recent", "")
    ids = [i for i in raw.split(",") if i] if raw else []
    if len(ids) > RECENT_MAX:
        raise InvalidParameter("recent", f"recent takes at most {RECENT_MAX} item ids")
    return [check_id(i, "recent") for i in ids]


async def recommendations(request: web.Request) -> web.Response:
    """A user's list: user list -> recent items' lists -> trending."""
    user_id = check_id(request.match_info["user_id"], "user_id")
    k, recent = check_k(request), check_recent(request)
    result = await request.app[READER].recommendations(user_id, k, recent)
    return _json({"user_id": user_id, **result.to_dict()})


def _similar(relation: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        item_id = check_id(request.match_info["item_id"], "item_id")
        result = await request.app[READER].similar(item_id, check_k(request), relation)
        return _json({"item_id": item_id, **result.to_dict()})

    handle.__doc__ = f"Customers who {relation} this also {relation}, then trending."
    return handle


async def trending(request: web.Request) -> web.Response:
    """Trending overall or in ``category``."""
    category = request.query.get("category", "")
    if category:
        check_id(category, "category")
    result = await request.app[READER].trending(category, check_k(request))
    return _json({"category": category, **result.to_dict()})


async def health(request: web.Request) -> web.Response:
    """Redis answers and a version is active."""
    return _json({"status": "ok", "version": await request.app[READER].version()})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI description of this API."""
    return _json(spec())


async def prometheus(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = await request.app[TELEMETRY].prometheus(await _active(request))
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def overview(request: web.Request) -> web.Response:
    """The dashboard's figures as JSON."""
    return _json(await request.app[TELEMETRY].overview(await _active(request)))


async def user_explorer(request: web.Request) -> web.Response:
    """A user's record, recent history and current list, with catalogue records."""
    user_id = check_id(request.match_info["user_id"], "user_id")
    reader = request.app[READER]
    result = await reader.recommendations(user_id, check_k(request))
    record = result.record or {}
    recent = list(record.get("recent", []))
    items = await reader.items(list(dict.fromkeys([*recent, *(r[0] for r in result.items)])))
    return _json({"user_id": user_id, "recent": recent, "list": result.to_dict(), "catalog": items})


async def dashboard(request: web.Request) -> web.Response:
    """The dashboard page (static HTML and a little JS)."""
    page = resources.files("agents").joinpath("static/dashboard.html").read_bytes()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


async def _active(request: web.Request) -> int | None:
    try:
        return await request.app[READER].version()
    except LookupError:
        return None


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors for every failure; request counts and durations by route."""
    start = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except InvalidParameter as exc:
        response = _error(422, "invalid_parameter", exc.detail, parameter=exc.parameter)
    except LookupError as exc:
        response = _error(503, "no_active_version", str(exc))
    except RedisError as exc:
        response = _error(503, "redis_unavailable", f"{type(exc).__name__}: {exc}")
    except web.HTTPException as exc:
        response = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    HTTP_REQUESTS.labels(name, str(response.status)).inc()
    HTTP_SECONDS.labels(name).observe(time.perf_counter() - start)
    return response


def build_http_app(settings: Settings) -> web.Application:
    """The aiohttp application: routes, one Redis client per process, clean shutdown."""
    app = web.Application(middlewares=[errors])
    redis = connect(settings.redis_url, retries=2)
    app[READER] = Reader(redis, settings.namespace)
    app[TELEMETRY] = Telemetry(redis, settings)

    async def close(_: web.Application) -> None:
        await redis.aclose()

    app.on_cleanup.append(close)
    app.router.add_get("/recommendations/{user_id:.+}", recommendations)
    app.router.add_get("/items/{item_id:.+}/also-bought", _similar("bought"))
    app.router.add_get("/items/{item_id:.+}/also-viewed", _similar("viewed"))
    app.router.add_get("/trending", trending)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/api/overview", overview)
    app.router.add_get("/api/users/{user_id:.+}", user_explorer)
    return app
