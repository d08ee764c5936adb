"""A read-only Redis client for the HTTP API: GET and MGET, auto-pipelined on one connection.

redis-py's asyncio client takes a pooled connection, writes and awaits each command on
its own: measured here, that was a third of a read request's CPU. This client queues
every command issued during one event-loop iteration and writes them in one send on a
single connection, and hiredis parses the replies, which arrive in order. Replies are
matched to callers first in, first out. A lost connection fails the commands in flight
with redis-py's ``ConnectionError`` (the API answers 503) and the next command reconnects.
A command that times out closes the connection too: its reply, and every one queued
behind it, may never come, and a connection that stopped answering without closing
would otherwise fail every later command after the full timeout.

URLs as redis-py reads them: ``redis://`` (TCP), ``rediss://`` (TLS, verified against
the system's CAs or ``ssl_ca_certs``) and ``unix://``; credentials in the URL take precedence
over ``username`` / ``password``, as in ``streams.security.redis_options``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.queued: list[bytes] = []
        self.transport: Any = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            fut = self.waiting.popleft()
            if fut.done():  # its caller timed out
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ResponseError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection to Redis lost: {exc}"))

    def flush(self) -> None:
        if self.queued and not self.closed:
            self.transport.write(b"".join(self.queued))
        self.queued.clear()


class PipelinedReads:
    """GET / MGET against the Redis at ``url`` (``redis://[:password@]host:port/db``)."""

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        username: str | None = None,
        password: str | None = None,
        ssl_ca_certs: str | None = None,
    ) -> None:
        options = parse_url(url)
        self.path: str | None = options.get("path")  # unix://
        self.host = options.get("host", "localhost")
        self.port = int(options.get("port", 6379))
        self.db = int(options.get("db", 0))
        self.username = options.get("username") or username
        self.password = options.get("password") or password
        self.tls: ssl.SSLContext | None = None
        if url.startswith("rediss://"):
            self.tls = ssl.create_default_context(cafile=ssl_ca_certs)
        self.timeout = timeout
        self._conn: _Protocol | None = None
        self._connecting = asyncio.Lock()

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        result: bytes | None = await self._call(b"GET", key)
        return result

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` (None where missing)."""
        result: list[bytes | None] = await self._call(b"MGET", *keys)
        return result

    async def aclose(self) -> None:
        """Close the connection."""
        if self._conn is not None and not self._conn.closed:
            self._conn.transport.close()
        self._conn = None

    async def _call(self, *args: Any) -> Any:
        conn = self._conn if self._conn is not None and not self._conn.closed else None
        if conn is None:
            conn = await self._connect()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.waiting.append(fut)
        if not conn.queued:
            asyncio.get_running_loop().call_soon(conn.flush)
        conn.queued.append(hiredis.pack_command(args))
        try:
            async with asyncio.timeout(self.timeout):
                return await fut
        except TimeoutError as exc:
            # Replies come in order: nothing queued behind this one can come sooner. The
            # next command opens a new connection, even one issued before the transport
            # has reported the close.
            if not conn.closed:
                conn.closed = True
                conn.transport.close()
            raise RedisTimeout(f"Redis did not answer within {self.timeout}s") from exc

    async def _connect(self) -> _Protocol:
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            loop = asyncio.get_running_loop()
            where = self.path or f"{self.host}:{self.port}"
            try:
                async with asyncio.timeout(self.timeout):
                    if self.path:
                        _, conn = await loop.create_unix_connection(_Protocol, self.path)
                    else:
                        _, conn = await loop.create_connection(
                            _Protocol, self.host, self.port, ssl=self.tls
                        )
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"Redis at {where}: {exc}") from exc
            self._conn = conn
            setup = []
            if self.password:
                auth = (self.username, self.password) if self.username else (self.password,)
                setup.append((b"AUTH", *auth))
            if self.db:
                setup.append((b"SELECT", self.db))
            for command in setup:
                await self._call(*command)
            return conn
