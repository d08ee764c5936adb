"""``kapparec simulate``: synthetic shoppers are shown their current lists and react to them.

Each request reads a user's list through :class:`agents.reader.Reader` (the read path a
frontend uses), and the impression and the clicks, carts and purchases it provokes go
to Kafka through the producer. The preference may change after ``shift_at`` requests,
which is what the drift detectors should notice.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from agents.producer import produce
from agents.publisher import connect
from agents.reader import Reader, ReadResult
from schemas.errors import KapparecError
from schemas.events import CLICK, Impression, Interaction
from streams.experiments import from_settings
from streams.security import redis_options
from streams.serving import Keys
from streams.settings import Settings, env_name, require
from streams.simulation import Event, Preference, Shopper

CONCURRENT_READS = 16  # like a frontend fleet's connection pool, not one socket per request


@dataclass
class SimulationSummary:
    """What was shown and clicked, per variant (the truth the report should approach)."""

    impressions: Counter[str] = field(default_factory=Counter)
    clicks: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        rows = [
            f"  {v}: {self.impressions[v]:,} lists, {self.clicks[v]:,} clicked "
            f"({self.clicks[v] / self.impressions[v]:.3f})"
            for v in sorted(self.impressions)
        ]
        head = f"{self.delivered:,} events in {self.elapsed_s:.1f}s"
        return "\n".join([head, *rows])


async def find_users(settings: Settings, limit: int) -> list[str]:
    """Up to ``limit`` users that have a published list in the active version."""
    redis = connect(settings.redis_url, retries=2, **redis_options(settings))
    try:
        version = await Reader(redis, settings.namespace).version()
        prefix = Keys(settings.namespace, version).user("")
        users: list[str] = []
        async for key in redis.scan_iter(match=prefix + "*", count=1000):
            users.append(key.decode()[len(prefix) :])
            if len(users) >= limit:
                break
        return sorted(users)
    finally:
        await redis.aclose()


async def _show(
    reader: Reader, settings: Settings, users: Sequence[str], k: int
) -> list[tuple[str, list[list[object]], str]]:
    exp = from_settings(settings)
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def read(u: str) -> ReadResult:
        async with gate:
            return await reader.recommendations(u, k)

    results = await asyncio.gather(*(read(u) for u in users))
    out = []
    for u, r in zip(users, results, strict=True):
        # A fallback list has no record; the frontend stamps the user's assigned variant.
        variant = (r.record or {}).get("variant") or exp.arm(u).variant
        out.append((u, r.items, str(variant)))
    return out


def simulate(
    settings: Settings,
    users: Sequence[str],
    requests: int,
    pref: Preference,
    *,
    shift_at: int | None = None,
    shifted: Preference | None = None,
    k: int = 10,
    seed: int = 0,
    start_ms: int | None = None,
    step_ms: int = 1_000,
    round_size: int = 200,
    progress: bool = True,
) -> SimulationSummary:
    """Serve ``requests`` lists to random ``users``; preference ``shifted`` from ``shift_at``."""
    require(settings, "kafka_bootstrap", "redis_url")
    if not users:
        raise KapparecError("no users to simulate: produce events first (kapparec produce)")
    now = int(time.time() * 1000)
    clock = now if start_ms is None else start_ms
    ahead_s = (clock + requests * step_ms - now) / 1000
    if settings.max_future_s and ahead_s > settings.max_future_s:
        raise KapparecError(
            f"the simulated clock would end {ahead_s:,.0f} s ahead of now (--requests x "
            f"--step-ms), and workers dead-letter events over {env_name('max_future_s')}="
            f"{settings.max_future_s} s ahead: lower them"
        )
    rng = random.Random(seed)
    shopper = Shopper(rng)
    summary = SimulationSummary()
    # The seed fixes the behaviour; ids are new at every run, or a second run's events
    # would be dropped as repeats of the first's (by event id and by request id).
    run_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    bar = tqdm(total=requests, unit="req", disable=None if progress else True, file=sys.stderr)

    async def run() -> None:
        nonlocal clock
        redis = connect(settings.redis_url, retries=2, **redis_options(settings))
        reader = Reader(redis, settings.namespace)
        try:
            done = 0
            while done < requests:
                batch = [rng.choice(users) for _ in range(min(round_size, requests - done))]
                events: list[Event] = []
                for n, (u, rows, variant) in enumerate(await _show(reader, settings, batch, k)):
                    now_pref = pref if shift_at is None or done + n < shift_at else shifted or pref
                    rid = f"{run_id}-{done + n}"
                    events += shopper.respond(u, rows, variant, rid, clock, now_pref)
                    clock += step_ms
                _tally(summary, events)
                sent = produce(settings, events, progress=False)
                if not sent.ok:
                    raise KapparecError(f"simulated events not delivered:\n{sent}")
                summary.delivered += sent.delivered_total
                done += len(batch)
                bar.update(len(batch))
        finally:
            await redis.aclose()

    try:
        asyncio.run(run())
    finally:
        bar.close()
    summary.elapsed_s = time.monotonic() - started
    return summary


def _tally(summary: SimulationSummary, events: Sequence[Event]) -> None:
    for ev in events:
        if isinstance(ev, Impression):
            summary.impressions[ev.variant or "none"] += 1
        elif isinstance(ev, Interaction) and ev.type == CLICK:
            summary.clicks[ev.variant or "none"] += 1
