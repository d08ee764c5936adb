"""``python -m streams.evaluation --dataset movielens --data-dir ../shared/data --out reports``."""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: ALS is reproducible and not slowed by oversubscription.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    from streams.evaluation.datasets import SPECS
    from streams.evaluation.experiment import MODELS

    p = argparse.ArgumentParser(
        prog="python -m streams.evaluation",
        description="Prequential (test-then-learn) offline evaluation of the system and baselines.",
    )
    p.add_argument("--dataset", choices=sorted(SPECS), default="movielens")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("../shared/data"),
        help="folder holding the data set folders (or the data set itself)",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    p.add_argument("--k", type=int, nargs="+", default=[10, 20], help="cut-offs (<= 20)")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N interactions")
    p.add_argument(
        "--models",
        default=None,
        help=f"comma-separated subset of: {', '.join(MODELS)}; or 'all', which adds the "
        "ablation variants (default: the shipped model, the pipeline and the baselines)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and print the markdown table."""
    from streams.evaluation.experiment import run
    from streams.evaluation.report import table

    args = parser().parse_args(argv)
    models = args.models.split(",") if args.models else None
    out = run(
        args.dataset,
        args.data_dir,
        args.out,
        ks=tuple(args.k),
        limit=args.limit,
        progress=not args.no_progress,
        models=models,
    )
    print(table(out))
    print(f"\n{out['n_cases']} cases, {out['runtime_s']}s; wrote {args.out}/eval-{args.dataset}.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
