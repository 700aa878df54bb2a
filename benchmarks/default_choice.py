"""``python -m benchmarks.default_choice``: candidate default detectors, speed beside quality.

Issue 12 asks for a default detector that scores >= 100,000 vectors/s through
``Scorer.score`` (batch 256, one thread, 10,000 training rows x 50 features) and
whose mean ROC-AUC / PR-AUC on the dev datasets is no lower than the old default
``ensemble`` (10,000 uniform reference rows, k = 5; ``OLD_DEFAULT``). This prints
one table with both for every candidate, measured in one run: the rate by
:func:`benchmarks.knn_speed.candidate_rates` (tutorial-like rows, median of
repeats), the quality by ``tripwire bench quality``'s protocol
(:func:`tripwire.bench.quality.run_quality`, same splits, seeds and metrics).

A candidate is a detector spec with optional hyperparameters after ``@``:
``ensemble``, ``ensemble@max_reference=2000``, ``knn@scaling=none@max_reference=2000``,
``ensemble@max_reference=2000@reference=sparse@scale_k=true`` (a value is read as
JSON when it parses, else as a string).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks import quality as harness
from benchmarks.knn_speed import Rate, candidate_rates
from tripwire.bench import report
from tripwire.bench.detectors import BenchDetector, Float32Detector
from tripwire.bench.detectors import build as build_named
from tripwire.bench.quality import QualitySettings, run_quality
from tripwire.training.detectors import make_detector

#: The old default: 10,000 uniform reference rows, k = 5 (what the quality target names).
OLD_DEFAULT = "ensemble@max_reference=10000@reference=uniform@scale_k=false"
CANDIDATES = (
    "ensemble",  # the default: 2,000 density-biased rows, scaled k
    OLD_DEFAULT,
    "ensemble@max_reference=4000@reference=uniform@scale_k=false",
    "ensemble@max_reference=2000@reference=uniform@scale_k=false",
    "ensemble@max_reference=3000",
    "ensemble@max_reference=1000",
    "knn",
    "knn@max_reference=2000",
    "knn@scaling=none@max_reference=2000",
    "ae",
    "vae",
)
#: The speed target of issue 12, vectors/s.
TARGET_RATE = 100_000


def parse_candidate(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ensemble@max_reference=2000"`` -> ``("ensemble", {"max_reference": 2000})``."""
    kind, *pairs = spec.split("@")
    params: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return kind, params


def make_candidate(spec: str, seed: int) -> Any:
    kind, params = parse_candidate(spec)
    return make_detector(kind, seed=seed, **params)


def factory(spec: str, seed: int) -> BenchDetector:
    """The quality benchmark's factory, accepting ``@key=value`` hyperparameters."""
    if "@" not in spec:
        return build_named(spec, seed)
    return Float32Detector(make_candidate(spec, seed))


@dataclass(frozen=True)
class Row:
    candidate: str
    rate: Rate | None
    roc_auc: float | None
    pr_auc: float | None


def speed_verdict(rate: Rate) -> str:
    """Against the target, judged on the CPU rate (the wall rate is the busy host's)."""
    return "met" if rate.cpu >= TARGET_RATE else f"short {1 - rate.cpu / TARGET_RATE:.0%}"


def markdown(rows: list[Row], baseline: Row | None, args: argparse.Namespace) -> str:
    lines = [
        f"`Scorer.score` vectors/s at batch {args.batch}, {torch.get_num_threads()} thread, "
        f"{args.rows:,} training rows x {args.features} features (median of {args.repeats}); "
        f"quality: mean over the datasets of `{args.datasets}` (seeds {args.seeds}).",
        "",
        "| candidate | vectors/s (wall) | vectors per CPU s | ROC-AUC | PR-AUC | speed target"
        " | quality target |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        assert r.rate is not None
        quality = "-"
        if baseline is not None and r.roc_auc is not None and r.pr_auc is not None:
            d_roc = r.roc_auc - (baseline.roc_auc or 0.0)
            d_pr = r.pr_auc - (baseline.pr_auc or 0.0)
            ok = d_roc >= -5e-4 and d_pr >= -5e-4  # the table's 3 decimals
            quality = "met" if ok else f"short ({d_roc:+.3f} / {d_pr:+.3f})"
        roc = "-" if r.roc_auc is None else f"{r.roc_auc:.3f}"
        pr = "-" if r.pr_auc is None else f"{r.pr_auc:.3f}"
        lines.append(
            f"| {r.candidate} | {r.rate.wall:,.0f} | {r.rate.cpu:,.0f} | {roc} | {pr} |"
            f" {speed_verdict(r.rate)} | {quality} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.default_choice",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--candidates", default=";".join(CANDIDATES), help="';'-separated")
    parser.add_argument("--baseline", default=OLD_DEFAULT, help="quality to match")
    parser.add_argument("--datasets", default="", help="folder of .npz (default: the harness's)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument(
        "--out", default="", help="also write the quality run's quality.{md,json} here"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="training rows (speed)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--test-rows", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    candidates = [c for c in args.candidates.split(";") if c]
    rates = candidate_rates({c: make_candidate(c, args.seed) for c in candidates}, args)
    means: dict[str, dict[str, Any]] = {}
    if not args.no_quality:
        args.datasets = args.datasets or str(harness.default_datasets_dir())
        names = list(dict.fromkeys([args.baseline, *candidates]))
        settings = QualitySettings(
            datasets=args.datasets, detectors=tuple(names),
            seeds=tuple(args.seeds.split(",")), rate_batch=0, out="",
        )  # fmt: skip
        result = run_quality(settings, factory=factory)
        if args.out:
            report.write(result, Path(args.out))
        datasets, _ = report.order(result)
        means = report.averages(report.cells(result.runs), datasets, names)
    rows = [
        Row(c, rates[c], means.get(c, {}).get("roc_auc"), means.get(c, {}).get("pr_auc"))
        for c in candidates
    ]
    base = means.get(args.baseline)
    baseline = Row(args.baseline, None, base["roc_auc"], base["pr_auc"]) if base else None
    print(markdown(rows, baseline, args))


if __name__ == "__main__":
    main()
