"""The HTTP read API (for frontends that do not talk to Redis), /metrics and the dashboard.

Reads go through :class:`agents.reader.Reader`, so HTTP serves the same fallback chain
as the read helper: user list -> lists of the user's recent items -> trending. Input is
checked before Redis is touched: a bad id or ``k`` is a 422 naming the parameter.

When Redis cannot be reached, a list request is answered from the last global trending
list this process read (kept fresh every few seconds), marked ``"degraded": true``;
only a process that never read it answers 503.

A plain ASGI application with a ten-line router, served by uvicorn (httptools, uvloop):
measured on this machine, a framework's routing and request objects cost more than
the Redis read itself (see docs/HTTP_API.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import orjson
from redis.exceptions import RedisError

from agents.openapi import spec
from agents.publisher import connect
from agents.reader import NoActiveVersion, Reader, ReadResult
from agents.redis_reads import PipelinedReads
from agents.telemetry import HTTP_REQUESTS, HTTP_SECONDS, Telemetry
from schemas.ids import ID_RULE, id_problem
from streams.security import redis_options
from streams.settings import Settings

K_DEFAULT, K_MAX = 10, 100
RECENT_MAX = 20
JSON = b"application/json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class InvalidParameter(Exception):
    """A request parameter failed validation; answered with 422."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler sees: the path's captured id (if any) and the query parameters."""

    param: str
    query: dict[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """Status, media type and body."""

    body: bytes
    status: int = 200
    media: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status)


def _error(status: int, error: str, detail: str, **extra: Any) -> Response:
    return _json({"error": error, "detail": detail, **extra}, status)


def check_id(value: str, parameter: str) -> str:
    """An id under the rule events follow (``schemas.ids``): any id the pipeline accepted
    can be asked for, and one it could never have accepted is a 422, not a miss."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidParameter(parameter, f"{parameter} {problem}; an id is {ID_RULE}")
    return value


def check_k(req: Request) -> int:
    """The ``k`` query parameter: an integer in [1, K_MAX], default K_DEFAULT."""
    raw = req.query.get("k")
    if raw is None:
        return K_DEFAULT
    # At most 3 digits before int(): Python refuses to parse over 4,300 (a 500).
    if len(raw) > 3 or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= K_MAX:
        raise InvalidParameter("k", f"k must be an integer between 1 and {K_MAX}")
    return int(raw)


def check_recent(req: Request) -> list[str]:
    """Optional ``recent``: comma-separated item ids the caller knows from the session."""
    raw = req.query.get("recent", "")
    ids = [i for i in raw.split(",") if i] if raw else []
    if len(ids) > RECENT_MAX:
        raise InvalidParameter("recent", f"recent takes at most {RECENT_MAX} item ids")
    return [check_id(i, "recent") for i in ids]


# The server decodes a path's bytes as UTF-8 with replacement: %FF and %FE would both
# read the id "\ufffd", an id the caller never sent. Such input is refused instead.
NOT_UTF8 = "is not valid UTF-8 once percent-decoded"


def _utf8_path(scope: Scope) -> bool:
    """Whether the request's path is valid UTF-8 once percent-decoded."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # the server does not give it: trust its decoding
        return True
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_query(raw: bytes) -> dict[str, str]:
    """The query string's parameters, as ``parse_qsl`` reads them (the last of a repeated
    name wins, an empty value is no value), except that a name or value that is not
    UTF-8 once percent-decoded is refused, naming the parameter."""
    query: dict[str, str] = {}
    for pair in raw.split(b"&"):
        name_b, _, value_b = pair.partition(b"=")
        if value_b:
            name = _decode(name_b, "query")
            query[name] = _decode(value_b, name)
    return query


def _decode(part: bytes, parameter: str) -> str:
    try:
        return unquote(part.replace(b"+", b" ").decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise InvalidParameter(parameter, f"{parameter} {NOT_UTF8}") from None


log = logging.getLogger(__name__)
TRENDING_REFRESH_S = 5.0


class HttpApi:
    """The ASGI application: one Redis client and one reader per process."""

    def __init__(self, settings: Settings) -> None:
        self._warm: asyncio.Task[None] | None = None
        self._warned = 0.0
        options = redis_options(settings)
        self.redis = connect(settings.redis_url, retries=2, **options)
        self.reads = PipelinedReads(settings.redis_url, **options)
        # Reader is typed for redis-py; it only calls get and mget, which PipelinedReads has.
        self.reader = Reader(self.reads, settings.namespace)  # type: ignore[arg-type]
        self.telemetry = Telemetry(self.redis, settings)
        self.page = resources.files("agents").joinpath("static/dashboard.html").read_bytes()
        handler = Callable[[Request], Awaitable[Response]]
        routes: list[tuple[str, handler]] = [
            ("/recommendations/{user_id}", self.recommendations),
            ("/items/{item_id}/also-bought", self.similar("bought")),
            ("/items/{item_id}/also-viewed", self.similar("viewed")),
            ("/items/{item_id}/similar", self.similar("similar")),
            ("/trending", self.trending),
            ("/health", self.health),
            ("/openapi.json", self.openapi),
            ("/metrics", self.prometheus),
            ("/dashboard", self.dashboard),
            ("/api/overview", self.overview),
            ("/api/users/{user_id}", self.user_explorer),
        ]
        self.exact = {t: (t, h) for t, h in routes if "{" not in t}
        self.patterns = [
            # DOTALL and fullmatch: a newline (%0A) is part of the id, and refused with it.
            (re.compile(re.sub(r"\{[^}]+\}", "(.+)", t), re.DOTALL), t, h)
            for t, h in routes
            if "{" in t
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        start = time.perf_counter()
        route, response = await self._respond(scope)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.media),
                    (b"content-length", str(len(response.body)).encode()),
                    *response.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        HTTP_REQUESTS.labels(route, str(response.status)).inc()
        HTTP_SECONDS.labels(route).observe(time.perf_counter() - start)

    async def _respond(self, scope: Scope) -> tuple[str, Response]:
        path: str = scope["path"]
        found = self.exact.get(path)
        param = ""
        if found is None:
            for rx, template, handler in self.patterns:
                if m := rx.fullmatch(path):
                    found, param = (template, handler), m.group(1)
                    break
        if found is None:
            return "unmatched", _error(404, "not_found", f"no route for {path}")
        if scope["method"] != "GET":
            refused = _error(405, "method_not_allowed", "only GET is served")
            return found[0], dataclasses.replace(refused, headers=((b"allow", b"GET"),))
        try:
            if param and not _utf8_path(scope):
                name = found[0].split("{", 1)[1].split("}", 1)[0]
                raise InvalidParameter(name, f"{name} {NOT_UTF8}")
            query = parse_query(scope["query_string"])
            return found[0], await found[1](Request(param, query))
        except InvalidParameter as exc:
            return found[0], _error(422, "invalid_parameter", exc.detail, parameter=exc.parameter)
        except NoActiveVersion as exc:
            return found[0], _error(503, "no_active_version", str(exc))
        except RedisError as exc:
            return found[0], _error(503, "redis_unavailable", f"{type(exc).__name__}: {exc}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._warm = asyncio.create_task(self._keep_trending())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._warm is not None:
                    self._warm.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await self._warm
                await self.redis.aclose()
                await self.reads.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _keep_trending(self) -> None:
        """Read the global trending list every few seconds: the outage fallback."""
        while True:
            try:
                await self.reader.trending("", 1)
            except (RedisError, NoActiveVersion):
                pass  # the last list read stays the fallback
            except Exception:  # a bad value must not end the fallback's refresh for good
                log.exception("reading the trending list for the outage fallback failed")
            await asyncio.sleep(TRENDING_REFRESH_S)

    def _degraded(self, k: int, exclude: list[str], exc: RedisError) -> ReadResult:
        result = self.reader.degraded(k, exclude)
        if result is None:
            raise exc
        now = time.monotonic()
        if now - self._warned > 10:  # one line per 10 s, not one per request
            self._warned = now
            log.warning("Redis unreachable (%s): serving the last trending list", exc)
        return result

    async def recommendations(self, req: Request) -> Response:
        """A user's list: user list -> recent items' lists -> trending."""
        user_id = check_id(req.param, "user_id")
        k, recent = check_k(req), check_recent(req)
        try:
            result = await self.reader.recommendations(user_id, k, recent)
        except RedisError as exc:
            result = self._degraded(k, recent, exc)
        return _json({"user_id": user_id, **result.to_dict()})

    def similar(self, relation: str) -> Callable[[Request], Awaitable[Response]]:
        """An item's ``relation`` list (bought, viewed or similar), then the others, trending."""

        async def handle(req: Request) -> Response:
            item_id = check_id(req.param, "item_id")
            k = check_k(req)
            try:
                result = await self.reader.similar(item_id, k, relation)
            except RedisError as exc:
                result = self._degraded(k, [item_id], exc)
            return _json({"item_id": item_id, **result.to_dict()})

        return handle

    async def trending(self, req: Request) -> Response:
        """Trending overall or in ``category``."""
        category = req.query.get("category", "")
        if category:
            check_id(category, "category")
        result = await self.reader.trending(category, check_k(req))
        return _json({"category": category, **result.to_dict()})

    async def health(self, req: Request) -> Response:
        """Redis answers and a version is active."""
        return _json({"status": "ok", "version": await self.reader.version()})

    async def openapi(self, req: Request) -> Response:
        """The OpenAPI description of this API."""
        return _json(spec())

    async def prometheus(self, req: Request) -> Response:
        """Prometheus text exposition."""
        body = await self.telemetry.prometheus(await self._active())
        return Response(body, media=b"text/plain; version=0.0.4; charset=utf-8")

    async def overview(self, req: Request) -> Response:
        """The dashboard's figures as JSON."""
        return _json(await self.telemetry.overview(await self._active()))

    async def user_explorer(self, req: Request) -> Response:
        """A user's recent history and current list, with catalogue records."""
        user_id = check_id(req.param, "user_id")
        result = await self.reader.recommendations(user_id, check_k(req))
        recent = list((result.record or {}).get("recent", []))
        shown = list(dict.fromkeys([*recent, *(r[0] for r in result.items)]))
        body = {
            "user_id": user_id,
            "recent": recent,
            "list": result.to_dict(),
            "catalog": await self.reader.items(shown),
        }
        return _json(body)

    async def dashboard(self, req: Request) -> Response:
        """The dashboard page (static HTML and a little JS)."""
        return Response(self.page, media=b"text/html; charset=utf-8")

    async def _active(self) -> int | None:
        try:
            return await self.reader.version()
        except NoActiveVersion:
            return None
