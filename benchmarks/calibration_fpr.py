"""``python -m benchmarks.calibration_fpr``: realised test false-positive rate of
``fpr:<rate>`` through ``train()`` (what ``tripwire train`` runs), with the threshold
on the held-out split alone (as before) and pooled with the kNN's leave-one-out
scores (``Detector.held_out_scores``, now the default).

For every ``.npz`` (``X``, ``y``) in ``--data-dir`` and every seed: train the
detector with the default splits, read the test split's false-positive rate from
the metrics, and count the runs in ``[rate / 2, 2 rate]`` among those whose test
split holds at least ``--min-test-normals`` normal rows (issue 12's criterion).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from tripwire.core.detector import Detector
from tripwire.training.pipeline import train
from tripwire.training.settings import TrainSettings


@contextlib.contextmanager
def held_out_only() -> Iterator[None]:
    """Calibrate on the held-out split alone: no detector offers held-out scores."""
    import tripwire.training.detectors  # noqa: F401  (registers the built-in kinds)

    original = Detector.held_out_scores
    kinds = [c for c in _subclasses(Detector) if "held_out_scores" in vars(c)]
    saved = {c: vars(c)["held_out_scores"] for c in kinds}
    for c in kinds:
        setattr(c, "held_out_scores", original)  # noqa: B010  (a method, patched on the class)
    try:
        yield
    finally:
        for c, method in saved.items():
            setattr(c, "held_out_scores", method)  # noqa: B010


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        out += [sub, *_subclasses(sub)]
    return out


def run(path: Path, seed: int, args: argparse.Namespace) -> tuple[float, int, int]:
    """(test FPR, test normal rows, rows the threshold rests on) of one training run."""
    with tempfile.TemporaryDirectory() as registry:
        settings = TrainSettings(data=str(path), registry=registry, model=args.model, seed=seed,
                                 threshold=f"fpr:{args.rate}", plot="none")  # fmt: skip
        result = train(settings)
    assert result.metrics is not None
    confusion = result.metrics["confusion"]
    n_normal = int(confusion["tn"] + confusion["fp"])
    return float(result.metrics["fpr"]), n_normal, int(result.threshold.get("rows", 0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibration_fpr",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", default="../shared/datasets/adbench")
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-test-normals", type=int, default=500)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the few-rows warnings of the small sets
    lo, hi = args.rate / 2, 2 * args.rate
    print("| dataset | seed | test normals | held-out only: rows, FPR | pooled: rows, FPR |")
    print("|---|---:|---:|---:|---:|")
    hits = {"held-out": 0, "pooled": 0}
    n_runs = 0
    for path in sorted(Path(args.data_dir).glob("*.npz")):
        for seed in args.seeds:
            with held_out_only():
                fpr_h, n_normal, rows_h = run(path, seed, args)
            fpr_p, _, rows_p = run(path, seed, args)
            counted = n_normal >= args.min_test_normals
            if counted:
                n_runs += 1
                hits["held-out"] += lo <= fpr_h <= hi
                hits["pooled"] += lo <= fpr_p <= hi
            mark = "" if counted else " (not counted)"
            print(f"| {path.stem}{mark} | {seed} | {n_normal} | {rows_h}, {100 * fpr_h:.2f}% |"
                  f" {rows_p}, {100 * fpr_p:.2f}% |")  # fmt: skip
    print()
    for name, hit in hits.items():
        print(f"{name}: {hit}/{n_runs} runs with FPR in [{100 * lo:g}%, {100 * hi:g}%]")


if __name__ == "__main__":
    main()
