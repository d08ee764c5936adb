"""Load test of the HTTP read API and of Redis GETs, open loop at fixed rates, on loopback.

    python -m agents.http_bench --rates 1000,10000 --duration 20 --processes 2

Fills a namespace of its own with realistic lists (users' lists of 50 items with reasons,
also-bought/also-viewed lists of 50, trending, catalogue records), starts ``kapparec
serve`` on a free port, offers each rate with :mod:`agents.loadgen` and writes the
figures to ``reports/http-bench-<time>.json``. The namespace is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis

from agents.loadgen import http_get, resp_command, run_load
from agents.redis_scan import delete_matching
from streams.blending import Rec
from streams.serving import Keys, encode_user
from streams.settings import Settings

# The workers' defaults: KAPPAREC_LIST_SIZE and KAPPAREC_ITEM_LIST_SIZE.
LIST_SIZE, ITEM_LIST_SIZE = Settings().list_size, Settings().item_list_size
TTL_S = 3600  # a crashed run leaves nothing behind for long


def populate(
    client: redis.Redis,
    namespace: str,
    users: int,
    items: int,
    seed: int = 0,
    encoding: str = "json",
) -> None:
    """Write lists shaped like the workers' for ``users`` users and ``items`` items.

    Users' lists are encoded as ``KAPPAREC_USER_LIST_ENCODING=encoding`` would write them.
    """
    rng = random.Random(seed)
    keys = Keys(namespace, 1)
    now = int(time.time() * 1000)
    item_ids = [str(1_000_000 + i) for i in range(items)]
    pipe = client.pipeline(transaction=False)

    def pick(n: int) -> list[str]:
        return rng.sample(item_ids, n)

    def category(item: str) -> str:
        return f"cat.{int(item) % 40}"

    packed = category if encoding == "packed" else None

    for item in item_ids:
        for rel in ("bought", "viewed"):
            rows = [[x, round(rng.random() * 5, 3)] for x in pick(ITEM_LIST_SIZE)]
            doc = {"v": 1, "computed_at": now, "event_ts": now, "items": rows}
            pipe.set(keys.item(rel, item), orjson.dumps(doc), ex=TTL_S)
        meta = {"item_id": item, "title": f"item {item}", "category": category(item)}
        pipe.set(keys.item_meta(item), orjson.dumps(meta), ex=TTL_S)
    trending = [[x, round(100 - j * 0.5, 3)] for j, x in enumerate(pick(100))]
    pipe.set(keys.trending(), orjson.dumps({"v": 1, "items": trending}), ex=TTL_S)
    pipe.execute()
    for u in range(users):
        anchors = pick(5)
        recs = [
            Rec(
                x,
                1 - j / LIST_SIZE,
                rng.choice([f"b:{anchors[0]}", f"v:{anchors[1]}", f"c:{category(x)}", "t"]),
            )
            for j, x in enumerate(pick(LIST_SIZE))
        ]
        record = encode_user(recs, anchors, 1, "A", now, now, packed)
        pipe.set(keys.user(f"u{u}"), record, ex=TTL_S)
        if u % 2000 == 1999:
            pipe.execute()
    pipe.set(keys.active, "1", ex=TTL_S)
    pipe.execute()


def requests_mix(host: str, port: int, users: int, items: int, n: int = 20_000) -> list[bytes]:
    """80 % known users, 10 % unknown users (trending fallback), 10 % also-bought."""
    rng = random.Random(1)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.8:
            path = f"/recommendations/u{rng.randrange(users)}?k=10"
        elif r < 0.9:
            path = f"/recommendations/new{rng.randrange(10**9)}?k=10"
        else:
            path = f"/items/{1_000_000 + rng.randrange(items)}/also-bought?k=10"
        out.append(http_get(host, port, path))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "serve"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the HTTP server did not become healthy within 30 s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Populate, serve, offer each rate; return the report."""
    import uvloop

    url = args.redis_url
    where, _, db = url.split("//", 1)[1].partition("/")
    host, port_s = where.rsplit(":", 1)
    namespace = f"httpbench{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    populate(client, namespace, args.users, args.items, encoding=args.encoding)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAPPAREC_")},
        "KAPPAREC_REDIS_URL": url,
        "KAPPAREC_NAMESPACE": namespace,
        "KAPPAREC_HTTP_PORT": str(port),
        "KAPPAREC_HTTP_PROCESSES": str(args.processes),
    }
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "load_avg_before": os.getloadavg(),
        "server_processes": args.processes,
        "users": args.users,
        "items": args.items,
        "user_list_encoding": args.encoding,
        "http": [],
        "redis_get": [],
    }
    server = _start_server(env, port)
    try:
        reqs = requests_mix("127.0.0.1", port, args.users, args.items)
        for rate in args.rates:
            res = uvloop.run(
                run_load("127.0.0.1", port, reqs, rate, args.duration, connections=args.connections)
            )
            report["http"].append(res.summary())
            print("http", res.summary(), flush=True)
        keys = Keys(namespace, 1)
        gets = [resp_command("GET", keys.user(f"u{i % args.users}")) for i in range(20_000)]
        for rate in args.redis_rates:
            res = uvloop.run(
                run_load(
                    host,
                    int(port_s),
                    gets,
                    rate,
                    args.duration,
                    "resp",
                    args.connections,
                    setup=[resp_command("SELECT", db or "0")],
                )
            )
            report["redis_get"].append(res.summary())
            print("redis GET", res.summary(), flush=True)
    finally:
        server.terminate()
        server.wait(30)
        delete_matching(client, f"{namespace}:*")
        client.close()
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default=os.environ.get("KAPPAREC_REDIS_URL", ""))
    p.add_argument("--rates", default="1000,10000", help="HTTP requests/s, comma-separated")
    p.add_argument("--redis-rates", default="10000", help="Redis GETs/s, comma-separated")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    p.add_argument("--processes", type=int, default=2, help="HTTP server processes")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--encoding", choices=("json", "packed"), default="json", help="of users' lists")
    p.add_argument("--out", type=Path, default=Path("reports"))
    args = p.parse_args(argv)
    if not args.redis_url.startswith("redis://"):
        p.error("give --redis-url redis://host:port/db (or set KAPPAREC_REDIS_URL)")
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.redis_rates = [float(r) for r in args.redis_rates.split(",") if r]
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"http-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
