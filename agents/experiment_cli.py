"""CLI commands of experimentation: ``simulate``, ``export`` and ``ab`` (the live report).

``register(main)`` adds them to the ``kapparec`` group. ``agents.cli`` is imported
lazily inside each command: it imports this module, and it also runs as ``__main__``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
import orjson


def _friendly(fn: Any, *args: Any) -> Any:
    from agents.cli import friendly

    return friendly(fn)(*args)


def _settings() -> Any:
    from agents.cli import settings_from_env

    return settings_from_env()


@click.command()
@click.option(
    "--requests", default=2_000, type=click.IntRange(1), show_default=True,
    help="lists shown in total",
)  # fmt: skip
@click.option(
    "--users", default=500, type=click.IntRange(1), show_default=True,
    help="users with a list, taken by SCAN",
)  # fmt: skip
@click.option("--ctr", default="A=0.05,B=0.08", show_default=True, help="list CTR per variant")
@click.option("--pull", default="", help="relative click pull per source, e.g. trending=2")
@click.option("--shift-at", type=int, help="change the preference after N requests")
@click.option("--shift-ctr", default="", help="list CTR per variant after the shift")
@click.option(
    "--k", default=10, type=click.IntRange(1, 100), show_default=True, help="list length shown"
)
@click.option(
    "--step-ms", default=1_000, type=click.IntRange(0), show_default=True,
    help="event time between requests",
)  # fmt: skip
@click.option("--seed", default=0, show_default=True)
def simulate(
    requests: int,
    users: int,
    ctr: str,
    pull: str,
    shift_at: int | None,
    shift_ctr: str,
    k: int,
    step_ms: int,
    seed: int,
) -> None:
    """Show users their current lists and emit impressions, clicks, carts and purchases."""

    def run() -> None:
        from agents.simulator import find_users
        from agents.simulator import simulate as run_simulation
        from streams.simulation import Preference, parse_rates

        rates = {}
        for hint, raw in (("--ctr", ctr), ("--pull", pull), ("--shift-ctr", shift_ctr)):
            try:
                rates[hint] = parse_rates(raw)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint=hint) from None
        pref = Preference(rates["--ctr"], source_pull=rates["--pull"])
        shifted = Preference(rates["--shift-ctr"], source_pull=pref.source_pull)
        s = _settings()
        found = asyncio.run(find_users(s, users))
        click.echo(f"{len(found)} user(s) with a list", err=True)
        summary = run_simulation(
            s, found, requests, pref, shift_at=shift_at,
            shifted=shifted if shift_ctr else None, k=k, seed=seed, step_ms=step_ms,
        )  # fmt: skip
        click.echo(str(summary))

    _friendly(run)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="file to write")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--segment", help="variant=NAME or shard=I/N (default: every user)")
def export(out: Path, fmt: str, segment: str | None) -> None:
    """Write the current lists of all (or a segment of) users of the active version."""

    def run() -> None:
        from agents.export import export_lists
        from streams.export import parse_segment

        try:
            chosen = parse_segment(segment)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--segment") from None
        scanned, written = export_lists(_settings(), out, fmt, chosen)
        click.echo(f"wrote {written:,} of {scanned:,} user list(s) to {out}")

    _friendly(run)


@click.command()
@click.option("--alerts", default=5, show_default=True, help="latest drift alerts to show")
def ab(alerts: int) -> None:
    """Print the live A/B report and the latest drift alerts of the active version."""

    def run() -> None:
        import redis

        from agents.export import active_version
        from streams.security import redis_options
        from streams.serving import Keys

        s = _settings()
        client = redis.Redis.from_url(s.redis_url, **redis_options(s))
        try:
            keys = Keys(s.namespace, active_version(client, s.namespace))
            raw = client.get(keys.metrics_ab())
            latest = client.lrange(keys.alerts(), 0, alerts - 1)
        finally:
            client.close()
        if raw is None:
            raise LookupError(f"no report yet at {keys.metrics_ab()}")
        doc = {"report": orjson.loads(raw), "alerts": [orjson.loads(a) for a in latest]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")

    _friendly(run)


def register(group: click.Group) -> None:
    """Add the experiment commands to the ``kapparec`` command group."""
    for command in (simulate, export, ab):
        group.add_command(command)
