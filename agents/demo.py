"""The demo: embedded stack + a worker + the REES46 slice -> recommendations on screen.

Everything it starts, it stops again, also when a step fails.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from agents.admin import ensure_topics
from agents.control import refresh_when_drained
from agents.display import show
from agents.producer import produce
from agents.publisher import connect
from agents.reader import Reader
from infra import stack
from infra.workers import WorkerProcess
from schemas.errors import KapparecError
from schemas.events import ADD_TO_CART, PURCHASE, Interaction
from streams.settings import Settings, load_settings, mask_url
from streams.sources import read_rees46
from streams.topics import build_topics

REES46 = "rees46-multicategory-2019oct-head/2019-Oct_head17433.csv"
CATCH_UP_TIMEOUT_S = 600.0


class DemoError(KapparecError):
    """A demo step failed; the message says which and where to look."""


class Tally:
    """Counts per user and per purchased item while events stream past."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.converted: Counter[str] = Counter()
        self.bought: Counter[str] = Counter()

    def watch(self, events: Iterator[Any]) -> Iterator[Any]:
        for ev in events:
            if isinstance(ev, Interaction):
                self.events[ev.user_id] += 1
                if ev.type in (ADD_TO_CART, PURCHASE):
                    self.converted[ev.user_id] += 1
                if ev.type == PURCHASE:
                    self.bought[ev.item_id] += 1
            yield ev

    def showcase_users(self, n: int) -> list[str]:
        """Active users who also carted or bought something."""
        ranked = sorted(self.converted, key=lambda u: (-self.events[u], u))
        return ranked[:n]


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


def run_demo(base: Settings, data_dir: Path | None, n_users: int) -> None:
    """Run the whole demo; raises :class:`DemoError` with the failing step."""
    path = (data_dir or base.data_dir) / REES46
    if not path.exists():
        raise DemoError(f"demo data not found at {path}; set KAPPAREC_DATA_DIR or --data-dir")
    with ExitStack() as cleanup:
        _step("starting the embedded broker and Redis")
        before = stack.read_state(base.state_dir)
        state = stack.up(base)
        if before is None or before.get("pids") != state.get("pids"):
            cleanup.callback(lambda: (_step("stopping the embedded stack"), stack.down(base)))
        settings = load_settings(
            fallback=state, kafka_bootstrap=state["kafka_bootstrap"], redis_url=state["redis_url"]
        )
        click.echo(f"    broker {settings.kafka_bootstrap}, redis {mask_url(settings.redis_url)}")
        ensure_topics(settings.kafka_bootstrap, build_topics(settings).all())

        log = Path(settings.state_dir) / "worker-demo.log"
        _step(f"starting a worker (log: {log})")
        worker = WorkerProcess(settings, log)
        cleanup.callback(lambda: (_step("stopping the worker"), worker.stop()))

        _step(f"loading {path.name} (catalogue + events, original timestamps)")
        tally = Tally()
        summary = produce(settings, tally.watch(read_rees46(path)))
        click.echo("    " + str(summary).replace("\n", "\n    "))

        _step("waiting until the worker has processed the log")
        started = time.monotonic()

        def check(lag: dict[str, int]) -> None:
            if not worker.alive:
                raise DemoError(f"worker exited with {worker.proc.returncode}:\n{worker.tail()}")
            click.echo(f"    lag {sum(lag.values()):>6} messages", err=True)

        # drained, then every list recomputed from the final state
        refresh_when_drained(settings, CATCH_UP_TIMEOUT_S, on_poll=check)
        click.echo(f"    caught up in {time.monotonic() - started:.1f}s")
        asyncio.run(_show(settings, tally, n_users))


async def _show(settings: Settings, tally: Tally, n_users: int) -> None:
    redis = connect(settings.redis_url, retries=2)
    reader = Reader(redis, settings.namespace)
    try:
        for user in tally.showcase_users(n_users):
            result = await reader.recommendations(user, k=10)
            show(
                (result, await reader.items([r[0] for r in result.items])),
                False,
                f"\nrecommendations for user {user} ({tally.events[user]} events)",
            )
        for item, _ in tally.bought.most_common(20):
            result = await reader.similar(item, k=10)
            if "bought" in result.sources:
                meta = (await reader.items([item])).get(item)
                show(
                    (result, await reader.items([r[0] for r in result.items])),
                    False,
                    f"\ncustomers who bought {item} ({_brief(meta)}) also bought",
                )
                break
        result = await reader.trending(k=10)
        show(
            (result, await reader.items([r[0] for r in result.items])), False, "\ntrending overall"
        )
    finally:
        await redis.aclose()


def _brief(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "unknown item"
    return " ".join(str(meta.get(k)) for k in ("category", "brand") if meta.get(k))
