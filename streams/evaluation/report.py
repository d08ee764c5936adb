"""Evaluation outputs: ``eval-<dataset>.json``, a markdown table and a HitRate-over-time plot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

COLUMNS = ("HitRate", "Recall", "NDCG", "Coverage")

PROTOCOL = """\
1. Replay every interaction once, in event-time order (ties in source order).
2. A case is {cases} by a user with at least one earlier interaction, on an item that \
user has not interacted with before.
3. Before the event is applied, each model returns its top 20 for the user, excluding every \
item the user interacted with; the target's rank is recorded (beyond 20 = miss).
4. Then every model learns the event (test-then-learn); nobody sees an event before being \
tested on it.
5. HitRate/NDCG/MRR use the case's item; Recall uses the user's new positives within \
{horizon} from the case; Coverage = distinct items listed / {catalogue} items."""


def write(out: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write the three files for ``out`` (the summary :func:`~.experiment.run` returns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"eval-{out['dataset']}"
    paths = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md"),
             "png": stem.with_suffix(".png")}  # fmt: skip
    paths["json"].write_text(json.dumps(out, indent=2, sort_keys=False) + "\n")
    paths["md"].write_text(markdown(out))
    plot(out, paths["png"])
    return paths


def _duration(ms: int) -> str:
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms % size == 0:
            n = ms // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{ms} ms"


def table(out: dict[str, Any]) -> str:
    """The metrics of every model as a markdown table (K ascending, then MRR)."""
    ks = out["protocol"]["ks"]
    heads = [f"{c}@{k}" for k in ks for c in COLUMNS] + ["MRR"]
    lines = ["| model | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for name, m in out["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m[h]:.4f}" for h in heads) + " |")
    return "\n".join(lines)


def markdown(out: dict[str, Any]) -> str:
    """The whole markdown report."""
    p = out["protocol"]
    secs = out["model_seconds"]
    timing = ", ".join(f"{n} {s['learn'] + s['recommend']:.0f}s" for n, s in secs.items())
    protocol = PROTOCOL.format(
        cases=p["case_label"], horizon=_duration(p["horizon_ms"]), catalogue=out["catalogue_size"]
    )
    return "\n".join([
        f"# Offline evaluation: {out['dataset']}",
        "",
        f"Created {out['created']}; source `{out['source']}`"
        + (f", first {out['limit']} interactions" if out.get("limit") else "") + ".",
        f"{out['n_interactions']} interactions, {out['n_positives']} of the case types, "
        f"**{out['n_cases']} cases** (skipped: {out['skipped']['no_history']} without history, "
        f"{out['skipped']['repeat_item']} on an item already interacted with). "
        f"Runtime {out['runtime_s']}s.",
        "",
        table(out),
        "",
        "## Protocol",
        "",
        protocol,
        "",
        f"Model time (learn + recommend): {timing}.",
        "",
    ])  # fmt: skip


def plot(out: dict[str, Any], path: Path) -> None:
    """HitRate@K per time bucket, one line per model (Agg backend, no display needed)."""
    s = out["series"]
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    for name, points in s["points"].items():
        stamps = [datetime.fromtimestamp(t / 1000, UTC) for t, _, _ in points]
        xs = date2num(stamps)  # type: ignore[no-untyped-call, unused-ignore]
        ax.plot(xs, [hr for _, hr, _ in points], marker=".", label=name)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call, unused-ignore]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call, unused-ignore]
    ax.set_ylabel(f"{s['metric']} per {s['bucket_label']}")
    ax.set_xlabel("event time (UTC)")
    ax.set_title(f"{out['dataset']}: prequential {s['metric']} over event time")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=110)
