"""``python -m benchmarks.knn_against REV``: this checkout's neighbour search against REV's.

Loads ``training/detectors/neighbours.py`` as it was at git revision ``REV`` into a
module of its own, fits ``knn`` and ``ensemble`` (with a few ``max_reference``
values) once on the tutorial-like rows of :mod:`benchmarks.knn_speed`, and scores the
same batches through ``Scorer.score`` with either search, alternating the two in
every repeat so that a busy host slows both alike. Prints the median vectors per CPU
second of each, the ratio, and whether the scores are the same bits (they must be:
the search's answer is exact).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import time
import types
from collections.abc import Iterator

import numpy as np
import torch

from benchmarks import REPO_ROOT
from benchmarks.knn_speed import members, tutorial_like
from tripwire.core.detector import Detector
from tripwire.core.scorer import Scorer
from tripwire.training.detectors import knn as knn_module
from tripwire.training.detectors import make_detector

SOURCE = "training/detectors/neighbours.py"


def module_at(rev: str) -> types.ModuleType:
    """``neighbours.py`` as of ``rev``, executed as a fresh module."""
    text = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{rev}:{SOURCE}"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType(f"neighbours_at_{rev}")
    exec(compile(text, f"{rev}:{SOURCE}", "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def searching_with(det: Detector, module: types.ModuleType) -> Iterator[None]:
    """Score ``det`` with ``module``'s search for the duration."""
    saved, original = [m.index_ for m in members(det)], knn_module.nearest
    for m in members(det):
        m.index_ = module.NeighbourIndex(m.reference_z_)
    knn_module.nearest = module.nearest
    try:
        yield
    finally:
        knn_module.nearest = original
        for m, index in zip(members(det), saved, strict=True):
            m.index_ = index


def cpu_rate(scorer: Scorer, batches: list[np.ndarray]) -> float:
    start = time.process_time()
    for b in batches:
        scorer.score(b)
    return sum(len(b) for b in batches) / (time.process_time() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knn_against",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("rev", help="git revision whose search to compare with")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--test-rows", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    other = module_at(args.rev)
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    batches = [T[i : i + args.batch] for i in range(0, len(T) - args.batch + 1, args.batch)]
    specs = {"knn": {}, "ensemble": {}, **{f"ensemble, max_reference={m}": {"max_reference": m}
                                           for m in (4000, 2000, 1000)}}  # fmt: skip
    print(f"| detector | {args.rev} vectors per CPU s | this checkout | ratio | same bits |")
    print("|---|---:|---:|---:|---|")
    for name, params in specs.items():
        kind = name.split(",")[0]
        det = make_detector(kind, seed=args.seed, **params).fit(X)
        scorer = Scorer("bench", "1", det, np.inf, tuple(f"f{i}" for i in range(X.shape[1])))
        mine, theirs = [], []
        with searching_with(det, other):
            old_scores = scorer.score(T).scores
        new_scores = scorer.score(T).scores
        for _ in range(args.repeats):
            with searching_with(det, other):
                theirs.append(cpu_rate(scorer, batches))
            mine.append(cpu_rate(scorer, batches))
        a, b = statistics.median(theirs), statistics.median(mine)
        same = bool(np.array_equal(old_scores, new_scores))
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
