"""The ``kapparec`` command: stack, worker, producer, read path, demo, evaluation."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from schemas.errors import KapparecError
from streams.settings import Settings, SettingsError, load_settings, require

F = TypeVar("F", bound=Callable[..., Any])


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the environment, falling back to the addresses ``kapparec up`` recorded."""
    from infra.stack import read_state

    base = load_settings()
    state = read_state(base.state_dir)
    fallback = {k: str(v) for k, v in (state or {}).items() if isinstance(v, str | int)}
    return load_settings(fallback=fallback, **overrides)


def friendly(fn: F) -> F:
    """Turn our errors into one clear line on stderr and exit status 2."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (KapparecError, SettingsError, LookupError, TimeoutError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return run  # type: ignore[return-value]


@click.group()
def main() -> None:
    """kapparec: streaming recommendations from a Kafka log into Redis."""


@main.command()
@click.option(
    "--kafka-port", type=click.IntRange(1, 65_535), help="broker port (default: a free port)"
)
@click.option(
    "--redis-port", type=click.IntRange(1, 65_535), help="Redis port (default: a free port)"
)
@friendly
def up(kafka_port: int | None, redis_port: int | None) -> None:
    """Start the embedded broker and Redis (idempotent)."""
    from infra.stack import up as stack_up

    state = stack_up(load_settings(), kafka_port=kafka_port, redis_port=redis_port)
    click.echo(f"KAPPAREC_KAFKA_BOOTSTRAP={state['kafka_bootstrap']}")
    click.echo(f"KAPPAREC_REDIS_URL={state['redis_url']}")


@main.command()
@friendly
def down() -> None:
    """Stop what ``kapparec up`` started."""
    from infra.stack import down as stack_down

    stopped = stack_down(load_settings())
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@main.command()
@friendly
def status() -> None:
    """Show the embedded stack and the consumer lag of the configured version."""
    from infra.stack import status as stack_status

    click.echo(orjson.dumps(stack_status(load_settings()), option=orjson.OPT_INDENT_2).decode())


@main.command()
@friendly
def topics() -> None:
    """Create the registry's topics (changelogs included) and verify partition counts."""
    from agents.admin import ensure_topics
    from streams.security import librdkafka_security
    from streams.topics import build_topics

    s = settings_from_env()
    require(s, "kafka_bootstrap")
    created = ensure_topics(
        s.kafka_bootstrap, build_topics(s).all(), security=librdkafka_security(s)
    )
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@main.command()
@friendly
def worker() -> None:
    """Run one worker of the configured version (scale out by starting more)."""
    from agents.worker import run_worker

    run_worker(settings_from_env())


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["rees46", "movielens", "jsonl"]))
@click.option(
    "--synthetic", type=click.IntRange(1), help="send N synthetic interactions instead of a file"
)
@click.option(
    "--users", default=1_000, type=click.IntRange(1), show_default=True, help="synthetic users"
)
@click.option(
    "--items", default=500, type=click.IntRange(1), show_default=True, help="synthetic items"
)
@click.option("--seed", default=0, show_default=True, help="synthetic seed")
@click.option("--limit", type=click.IntRange(1), help="stop after N records")
@friendly
def produce(
    path: Path | None,
    fmt: str | None,
    synthetic: int | None,
    users: int,
    items: int,
    seed: int,
    limit: int | None,
) -> None:
    """Send events from a file (REES46 CSV, MovieLens dir, JSONL) or a synthetic generator."""
    from agents.producer import produce as send
    from streams.sources import read_events
    from streams.sources import synthetic as generate

    if (path is None) == (synthetic is None):
        raise click.UsageError("give a PATH or --synthetic N")
    s = settings_from_env()
    events = read_events(path, fmt) if path else generate(users, items, synthetic or 0, seed)
    summary = send(s, events, limit=limit)
    click.echo(str(summary))
    if not summary.ok:
        sys.exit(1)
    if not summary.delivered_total and summary.rejected:
        click.echo("error: no record of the input could be read (check --format)", err=True)
        sys.exit(1)


main.add_command(produce, name="load")


def _read(coro_fn: Callable[..., Any], *args: Any) -> Any:
    from agents.publisher import connect
    from agents.reader import Reader
    from streams.security import redis_options

    s = settings_from_env()
    require(s, "redis_url")

    async def run() -> Any:
        redis = connect(s.redis_url, retries=2, **redis_options(s))
        try:
            return await coro_fn(Reader(redis, s.namespace), *args)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _id_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an id no event could carry (e.g. undecodable bytes from the shell)."""
    from schemas.ids import ID_RULE, id_problem

    problem = id_problem(value, min_len=0 if param.name == "category" else 1)
    if problem is not None:
        raise click.BadParameter(f"{problem}; an id is {ID_RULE}")
    return value


@main.command()
@click.argument("user_id", callback=_id_argument)
@click.option("--k", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the raw result as JSON")
@friendly
def recs(user_id: str, k: int, as_json: bool) -> None:
    """A user's recommendations (user list -> recent items' lists -> trending)."""
    from agents.display import show

    show(
        _read(lambda r: _with_items(r, r.recommendations(user_id, k))),
        as_json,
        f"recommendations for user {user_id}",
    )


@main.command()
@click.argument("item_id", callback=_id_argument)
@click.option("--k", default=10, show_default=True)
@click.option("--relation", type=click.Choice(["bought", "viewed", "similar"]), default="bought")
@click.option("--json", "as_json", is_flag=True)
@friendly
def similar(item_id: str, k: int, relation: str, as_json: bool) -> None:
    """Also bought (or viewed) with this item, or nearest by item vector (``similar``);
    then the item's other lists, then trending."""
    from agents.display import show

    title = (
        f"similar to item {item_id}"
        if relation == "similar"
        else f"also {relation} with item {item_id}"
    )
    show(_read(lambda r: _with_items(r, r.similar(item_id, k, relation))), as_json, title)


@main.command()
@click.option("--category", default="", callback=_id_argument)
@click.option("--k", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly
def trending(category: str, k: int, as_json: bool) -> None:
    """Trending items overall or in one category."""
    from agents.display import show

    show(
        _read(lambda r: _with_items(r, r.trending(category, k))),
        as_json,
        f"trending {('in ' + category) if category else 'overall'}",
    )


async def _with_items(reader: Any, pending: Any) -> Any:
    result = await pending
    return result, await reader.items([row[0] for row in result.items])


@main.command()
@friendly
def lag() -> None:
    """Messages the configured version's workers have not processed yet, per topic."""
    from agents.lag import consumer_lag, input_topics
    from streams.security import librdkafka_security

    s = settings_from_env()
    require(s, "kafka_bootstrap")
    security = librdkafka_security(s)
    for topic, n in consumer_lag(
        s.kafka_bootstrap, s.app_id, input_topics(s), security=security
    ).items():
        click.echo(f"{topic}\t{n}")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="default: KAPPAREC_DATA_DIR")
@click.option("--users", default=3, show_default=True, help="users to show")
@friendly
def demo(data_dir: Path | None, users: int) -> None:
    """Start everything, load the REES46 slice, show recommendations, stop everything."""
    from agents.demo import run_demo

    run_demo(load_settings(), data_dir, users)


@main.command()
@click.option(
    "--version", "version", type=click.IntRange(1), required=True, help="the new version number"
)
@click.option(
    "--from",
    "start",
    default="earliest",
    show_default=True,
    help="earliest, or a time (ISO 8601 or epoch ms): interactions from their first "
    "offset at or after it; the catalogue is always read from the start",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="worker processes sharing the replay (at most the partition count are started)",
)
@friendly
def replay(version: int, start: str, workers: int) -> None:
    """Reprocess the log into VERSION (own group, tables and Redis namespace)."""
    from agents.versions import parse_start
    from agents.versions import replay as run_replay

    # A SIGTERM (a job runner's stop) unwinds like Ctrl-C, so the replay's workers stop too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run_replay(settings_from_env(version=version), start_ms=parse_start(start), workers=workers)


@main.command()
@click.argument("version", type=click.IntRange(1))
@click.option("--force", is_flag=True, help="promote even if the version is behind")
@friendly
def promote(version: int, force: bool) -> None:
    """Point readers at VERSION atomically; the previous version's keys expire."""
    from agents.versions import promote as run_promote

    old = run_promote(settings_from_env(), version, force)
    click.echo(f"active version: {version} (was {old})")


@main.command()
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--topics",
    "drop_topics",
    is_flag=True,
    help="also delete the version's own topics (changelogs, item deltas, vectors) and "
    "its consumer group",
)
@friendly
def retire(version: int, drop_topics: bool) -> None:
    """Let VERSION (not the live one) go: its keys expire; stop its workers first."""
    from agents.versions import retire as run_retire

    s = settings_from_env()
    expired, deleted, group = run_retire(s, version, topics=drop_topics)
    click.echo(f"v{version}: {expired} keys expire in {s.version_ttl_s}s")
    for name in deleted:
        click.echo(f"deleted topic {name}")
    if group:
        click.echo(f"deleted consumer group {group}")


@main.command()
@friendly
def refresh() -> None:
    """Once the log is drained, recompute every user's list (lists become final)."""
    from agents.control import refresh_when_drained

    s = settings_from_env()
    click.echo(f"refresh {refresh_when_drained(s, 3600)} done")


@main.group()
def dlq() -> None:
    """Dead-letter topics: send fixed records back to their source."""


@dlq.command(name="replay")
@click.option(
    "--source",
    type=click.Choice(["interactions", "impressions", "catalog"]),
    default="interactions",
    show_default=True,
)
@click.option("--reason", help="only records dead-lettered for this reason code")
@click.option("--since", help="only records dead-lettered since: epoch ms, 30m/2h/7d ago, ISO 8601")
@click.option("--fix", "fix_spec", help="fix-up hook package.module:function(key, value, letter)")
@click.option("--dry-run", is_flag=True, help="read and check, send nothing")
@click.option("--include-invalid", is_flag=True, help="send records still invalid as well")
@friendly
def dlq_replay(
    source: str,
    reason: str | None,
    since: str | None,
    fix_spec: str | None,
    dry_run: bool,
    include_invalid: bool,
) -> None:
    """Re-send dead-lettered records (original bytes, or as fixed by --fix) to their topic."""
    import time

    from agents.redelivery import replay_dead_letters
    from streams.redelivery import Selection, SelectionError, load_fix, parse_since

    try:
        since_ms = parse_since(since, int(time.time() * 1000)) if since else None
        fix = load_fix(fix_spec) if fix_spec else None
    except SelectionError as exc:
        raise click.UsageError(str(exc)) from None
    summary = replay_dead_letters(
        settings_from_env(), source, Selection(reason, since_ms), fix, dry_run, include_invalid
    )
    click.echo(str(summary))
    if not summary.ok:
        sys.exit(1)


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def eval(args: tuple[str, ...]) -> None:
    """Offline prequential evaluation (see `kapparec eval --help`)."""
    from streams.evaluation.__main__ import main as evaluate

    sys.exit(evaluate(list(args)))


@main.command()
@click.option("--dataset", type=click.Choice(["movielens", "rees46"]), default="movielens")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("../shared/data"))
@click.option("--limit", default=5_000, show_default=True, help="first N interactions")
@click.option("--bucket-minutes", type=int, help="default: a day (MovieLens), 15 (REES46)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@friendly
def agree(dataset: str, data_dir: Path, limit: int, bucket_minutes: int | None, out: Path) -> None:
    """Bucketed evaluation through broker, worker and Redis vs the in-process pipeline."""
    from agents.agreement import run_agreement, table

    bucket_ms = bucket_minutes * 60_000 if bucket_minutes else None
    result = run_agreement(load_settings(), dataset, data_dir, limit, out, bucket_ms)
    click.echo(table(result))
    sys.exit(1 if result["rank_disagreements"] else 0)


@main.command()
@click.option("--events", default=30_000, show_default=True, help="events through the pipeline")
@click.option("--probes", default=200, show_default=True, help="freshness probes")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    help="events/s beside the loaded freshness probes  [default: half the pipeline rate]",
)
@click.option("--profile", is_flag=True, help="sample the worker with py-spy meanwhile")
@friendly
def bench(events: int, probes: int, out: Path, rate: float | None, profile: bool) -> None:
    """Pipeline throughput vs a Faust no-op agent on the same broker, and freshness."""
    from agents.bench import run_bench

    run_bench(load_settings(), events, probes, out, rate, profile)


@main.command()
@click.option("--host", help="default: KAPPAREC_HTTP_HOST")
@click.option("--port", type=click.IntRange(1, 65_535), help="default: KAPPAREC_HTTP_PORT")
@click.option("--processes", type=click.IntRange(min=1), help="default: KAPPAREC_HTTP_PROCESSES")
@friendly
def serve(host: str | None, port: int | None, processes: int | None) -> None:
    """HTTP read API, /metrics and /dashboard (see docs/HTTP_API.md)."""
    from agents.admin import check_redis
    from agents.server import serve as run_server
    from streams.security import redis_options

    given = {"http_host": host, "http_port": port, "http_processes": processes}
    s = settings_from_env(**{k: v for k, v in given.items() if v is not None})
    require(s, "redis_url")
    check_redis(s.redis_url, **redis_options(s))
    click.echo(f"serving http://{s.http_host}:{s.http_port} ({s.http_processes} processes)")
    sys.exit(run_server(s))


# Experimentation commands: simulate, export, ab (docs/EXPERIMENTS.md).
from agents.experiment_cli import register as register_experiment_commands  # noqa: E402

register_experiment_commands(main)

if __name__ == "__main__":
    main()
