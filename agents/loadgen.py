"""An open-loop load generator for HTTP/1.1 and Redis (RESP) on loopback.

Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to earlier ones,
and its latency is measured from that due time, not from when it was written. A stalled
server therefore shows up as latency instead of silently lowering the offered load (the
coordinated-omission trap of closed-loop tools). Requests go to idle connections in
turn, as a client's pool would use them; when every connection is busy a request is
pipelined behind the least loaded one, so queueing counts too. The achieved rate is
reported beside the target.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TICK_S = 0.001


@dataclass
class LoadResult:
    """What one run offered, what came back and how long it took."""

    target_rate: float
    duration_s: float
    sent: int
    completed: int
    offered_rate: float
    achieved_rate: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter[str]
    pipelined: int

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) in milliseconds; nan when nothing completed."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "target_rate": self.target_rate,
            "offered_rate": round(self.offered_rate, 1),
            "achieved_rate": round(self.achieved_rate, 1),
            "duration_s": round(self.duration_s, 2),
            "sent": self.sent,
            "completed": self.completed,
            "statuses": dict(self.statuses),
            "pipelined": self.pipelined,
            **{f"p{q:g}_ms": round(self.percentile(q), 3) for q in (50, 90, 99, 99.9)},
            "max_ms": round(max(self.latencies_ms, default=math.nan), 3),
        }


def _http_response(buf: bytearray) -> tuple[int, str] | None:
    """Length and status of the first complete HTTP response in ``buf``, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("responses must carry Content-Length")
    stop = head.find(b"\r\n", at + 2)
    length = int(head[at + 17 : stop if stop > 0 else len(head)])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return total, bytes(buf[9:12]).decode()


def _resp_reply(buf: bytearray) -> tuple[int, str] | None:
    """Length and kind of the first complete RESP reply in ``buf``, or None."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    kind = buf[0:1]
    if kind != b"$":
        return end + 2, "ok" if kind in (b"+", b":") else "error"
    n = int(buf[1:end])
    if n < 0:
        return end + 2, "nil"
    total = end + 2 + n + 2
    return (total, "ok") if len(buf) >= total else None


class _Conn(asyncio.Protocol):
    """One keep-alive connection: due times of requests in flight, parsed replies."""

    def __init__(self, parse: Any, run: _Run) -> None:
        self.parse = parse
        self.run = run
        self.buf = bytearray()
        self.due: deque[float] = deque()
        self.skip = 0  # replies to set-up commands, not measured
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.perf_counter()
        while self.buf:
            got = self.parse(self.buf)
            if got is None:
                return
            size, status = got
            del self.buf[:size]
            if self.skip:
                self.skip -= 1
                continue
            self.run.done(now - self.due.popleft(), status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class _Run:
    """Latencies and counts of one run; replies arriving after the warm-up are kept."""

    def __init__(self, keep_after: float) -> None:
        self.keep_after = keep_after
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.completed = 0

    def done(self, seconds: float, status: str) -> None:
        self.completed += 1
        if time.perf_counter() >= self.keep_after:
            self.latencies.append(seconds * 1000)
            self.statuses[status] += 1


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    duration_s: float,
    protocol: str = "http",
    connections: int = 64,
    warmup_s: float = 1.0,
    drain_s: float = 5.0,
    setup: Sequence[bytes] = (),
) -> LoadResult:
    """Offer ``rate`` requests/s for ``warmup_s + duration_s``; figures cover the last part.

    ``setup`` requests (e.g. a Redis ``SELECT``) are sent first on every connection.
    """
    parse = _http_response if protocol == "http" else _resp_reply
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    run = _Run(start + warmup_s)
    conns: list[_Conn] = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: _Conn(parse, run), host, port)
        conn.skip = len(setup)
        for request in setup:
            conn.transport.write(request)
        conns.append(conn)
    start = time.perf_counter()
    run.keep_after = start + warmup_s
    total = int(rate * (warmup_s + duration_s))
    sent = pipelined = turn = 0
    sent_at_warmup, done_at_warmup = -1, 0
    while sent < total:
        if sent_at_warmup < 0 and time.perf_counter() >= run.keep_after:
            sent_at_warmup, done_at_warmup = sent, run.completed
        due_now = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due_now:
            conn, turn = _next_idle(conns, turn)
            pipelined += bool(conn.due)
            conn.due.append(start + sent / rate)
            conn.transport.write(requests[sent % len(requests)])
            sent += 1
        await asyncio.sleep(TICK_S)
    offered_s = time.perf_counter() - run.keep_after
    replies_in_window = run.completed - done_at_warmup
    deadline = time.perf_counter() + drain_s
    while run.completed < sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for conn in conns:
        conn.transport.close()
    return LoadResult(
        target_rate=rate,
        duration_s=offered_s,
        sent=sent,
        completed=run.completed,
        offered_rate=(sent - sent_at_warmup) / offered_s,
        achieved_rate=replies_in_window / offered_s,
        latencies_ms=run.latencies,
        statuses=run.statuses,
        pipelined=pipelined,
    )


def _next_idle(conns: Sequence[_Conn], turn: int) -> tuple[_Conn, int]:
    """The next idle connection in turn (so all stay warm), else the least loaded one."""
    n = len(conns)
    for step in range(n):
        conn = conns[(turn + step) % n]
        if not conn.due:
            return conn, (turn + step + 1) % n
    return min(conns, key=lambda c: len(c.due)), turn


def http_get(host: str, port: int, path: str) -> bytes:
    """A keep-alive HTTP/1.1 GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


def resp_command(*args: str) -> bytes:
    """A Redis command in RESP."""
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        raw = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)
