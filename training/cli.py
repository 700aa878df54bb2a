"""``tripwire train``, ``score``, and ``registry`` and ``drift`` (from their own modules).

Printing the results for a person happens here; everything below logs.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tripwire.core.config import (
    add_arguments,
    env_defaults,
    env_name,
    from_args,
    guarded,
    shown_default,
)
from tripwire.training.settings import ScoreSettings, TrainSettings

T = TypeVar("T")

_TRAIN_DESCRIPTION = """\
Train a detector on normal rows, calibrate its threshold on held-out rows,
evaluate it on a held-out labelled test split (when labels exist) and publish
model + threshold + metrics as a new version in the registry.

examples:
  tripwire train --demo --model ae --promote production
  tripwire train --data events.csv --label-col label --threshold pot:1e-4
"""

_SCORE_DESCRIPTION = """\
Score every row of a file with a published model, through the same scoring code
the stream worker uses. --out .npy writes the scores; --out .csv writes id, score,
is_anomaly and the top contributing features of each row.
"""


def register(subparsers: Any) -> None:
    """Add ``train``, ``score`` and ``registry`` to the ``tripwire`` command."""
    _add_train(subparsers)
    _add_score(subparsers)
    _add_registry(subparsers)
    _add_drift(subparsers)


def _add_drift(subparsers: Any) -> None:
    from tripwire.training.drift_cli import register as register_drift

    register_drift(subparsers)


def _add_registry(subparsers: Any) -> None:
    from tripwire.training.registry.cli import register_registry

    register_registry(subparsers)


def _command(
    subparsers: Any, name: str, help_text: str, description: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _add_train(subparsers: Any) -> None:
    parser = _command(
        subparsers, "train", "train, calibrate and publish a model", _TRAIN_DESCRIPTION
    )
    defaults, env_error = env_defaults(TrainSettings)
    add_arguments(parser, TrainSettings, defaults)
    parser.set_defaults(func=guarded(env_error, run_train))


def _add_score(subparsers: Any) -> None:
    parser = _command(
        subparsers, "score", "score a file with a published model", _SCORE_DESCRIPTION
    )
    defaults, env_error = env_defaults(ScoreSettings)
    parser.add_argument(
        "--model",
        dest="model_ref",
        default=defaults.model_ref,
        metavar="REF",
        help="model NAME (= NAME@production), NAME@VERSION, NAME@ALIAS or NAME@latest "
        f"[env {env_name('model_ref')}{shown_default(str, defaults.model_ref)}]",
    )
    add_arguments(parser, ScoreSettings, defaults)
    parser.set_defaults(func=guarded(env_error, run_score))


# -- train -----------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from tripwire.training.evaluate import format_metrics
    from tripwire.training.pipeline import train

    settings = from_args(TrainSettings, args)
    result = train(settings)
    t = result.threshold
    spec_args = ",".join(str(v) for v in t["params"].values())  # as --threshold takes it
    lines = [
        f"published {result.name}@{result.version} ({result.detector}) -> {result.path}",
        f"rows           {_rows(result.rows)}",
        f"threshold      {t['method']}{':' if spec_args else ''}{spec_args} = {t['value']:.6g}",
    ]
    if result.metrics is None:
        lines.append("metrics        none (no labelled test split)")
    else:
        lines.append(format_metrics(result.metrics, show_threshold=False))
    if result.plot is not None:
        lines.append(f"plot           {result.plot}")
    if result.promoted:
        lines.append(f"promoted       {result.name}@{result.promoted} -> {result.version}")
    print("\n".join(lines))
    return 0


def _rows(rows: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rows.items())


# -- score -----------------------------------------------------------------------


def run_score(args: argparse.Namespace) -> int:
    from tripwire.core.registry import load_scorer
    from tripwire.training.data import align_features, load_data

    settings = from_args(ScoreSettings, args)
    settings.validate()
    assert settings.model_ref and settings.data and settings.out
    scorer = load_scorer(settings.registry, settings.model_ref)
    ds = align_features(load_data(settings.data, settings.label_col), scorer.feature_names)
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = ds.ids if ds.ids is not None else [str(i) for i in range(ds.n_rows)]
    batches = _batches(scorer, ds.X, settings.batch_rows)
    if out.suffix.lower() == ".npy":
        n_anomalies = _write_npy(out, batches)
    else:
        n_anomalies = _write_csv(out, batches, ids, scorer, ds.X, settings.top_k)
    print(
        f"scored {ds.n_rows} rows with {scorer.name}@{scorer.version}: {n_anomalies} above "
        f"threshold {scorer.threshold:.6g} -> {out}"
    )
    return 0


def _batches(scorer: Any, X: np.ndarray, batch_rows: int) -> Iterator[tuple[int, Any]]:
    """``(start, ScoreResult)`` per batch; batch-dependent detectors get one batch."""
    step = batch_rows if getattr(scorer.detector, "batch_independent", True) else max(len(X), 1)
    for start in range(0, len(X), step):
        yield start, scorer.score(X[start : start + step])


def _write_npy(out: Path, batches: Iterator[tuple[int, Any]]) -> int:
    scores: list[np.ndarray] = []
    flagged = 0
    for _, result in batches:
        scores.append(result.scores)
        flagged += int(np.sum(result.is_anomaly))
    array = np.concatenate(scores) if scores else np.empty(0, dtype=np.float64)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    _atomic(out, write)
    return flagged


def _write_csv(
    out: Path,
    batches: Iterator[tuple[int, Any]],
    ids: list[str],
    scorer: Any,
    X: np.ndarray,
    top_k: int,
) -> int:
    k = min(top_k, scorer.n_features)
    header = ["id", "score", "is_anomaly"]
    for i in range(1, k + 1):
        header += [f"top{i}_feature", f"top{i}_contribution"]
    flagged = 0

    def write(tmp: Path) -> None:
        nonlocal flagged
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for start, r in batches:
                for j, (score, flag) in enumerate(zip(r.scores, r.is_anomaly, strict=True)):
                    row_i = start + j
                    contrib = None if r.contributions is None else r.contributions[j]
                    top = scorer.top_features(X[row_i], contrib, k)
                    cells = [ids[row_i], repr(float(score)), int(bool(flag))]
                    for t in top:
                        cells += [t.name, repr(t.contribution)]
                    cells += [""] * (len(header) - len(cells))
                    w.writerow(cells)
                    flagged += int(bool(flag))

    _atomic(out, write)
    return flagged


def _atomic(out: Path, write: Callable[[Path], None]) -> None:
    """Write via a temp file in the same directory, then rename: no half-written output."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
