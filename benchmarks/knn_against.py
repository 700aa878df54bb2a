"""``python -m benchmarks.knn_against REV``: this checkout's neighbour search against REV's.

Loads ``training/detectors/neighbours.py`` as it was at git revision ``REV`` into a
module of its own (from ``1b60064`` on, the numba kernels live in ``kernels.py``,
which that module imports from this checkout: compare kernels against a revision
before it, or load both files), fits ``knn`` and ``ensemble`` at a few ``max_reference`` values
once on the tutorial-like rows of :mod:`benchmarks.knn_speed`, and measures, with
either search, alternating the two in every repeat so that a busy host slows both
alike (CPU time of this process, one torch thread; run it with
``OPENBLAS_NUM_THREADS=1``):

* the median CPU ms of ``neighbours.search`` per batch and per member, and of its
  selection kernel alone (``_search_rows``, both fed the same float32 proposals),
  and
* the median vectors per CPU second through ``Scorer.score``,

and whether the two give the same bits: the scores, and per member the search's
distances, contributions and fallback flags, on the test rows and leave-one-out on
the reference. They must: the answer is exact, and which rows fall back is a
function of the rows alone. ``--datasets DIR`` adds the same comparison of bits on
every ``DIR/*.npz`` (``X``, ``y``): fitted on the rows with ``y == 0``, all rows
scored.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import REPO_ROOT
from benchmarks.knn_speed import members, tutorial_like
from tripwire.core.detector import Detector
from tripwire.core.scorer import Scorer
from tripwire.training.detectors import knn as knn_module
from tripwire.training.detectors import make_detector
from tripwire.training.detectors import neighbours as this_module

SOURCE = "training/detectors/neighbours.py"
#: ``max_reference`` of the measured detectors.
REFERENCES = (10_000, 4000, 2000, 1000)


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


def search_ms(det: Detector, module: types.ModuleType, batches: list[np.ndarray]) -> float:
    """CPU ms of ``module.search`` per batch and per member."""
    work = [(module.NeighbourIndex(m.reference_z_), m.k_, [m._transform(b) for b in batches])
            for m in members(det)]  # fmt: skip
    start = time.process_time()
    for index, k, zs in work:
        for z in zs:
            module.search(z, index, k)
    return 1e3 * (time.process_time() - start) / (len(work) * len(batches))


def kernels(det: Detector, batches: list[np.ndarray]) -> list[tuple[Any, ...]]:
    """Per member and product chunk of each batch (as ``search`` splits it), the
    product's inputs and the arguments of ``_search_rows`` after it."""
    work = []
    for m in members(det):
        index = this_module.NeighbourIndex(m.reference_z_)
        n_cand = m.k_ + this_module.CANDIDATE_MARGIN
        step = max(1, min(this_module.MAX_CHUNK_ROWS, this_module.CHUNK_VALUES // len(index.R)))
        for b in batches:
            for z in np.array_split(m._transform(b), range(step, len(b), step)):
                q32 = torch.from_numpy(z.astype(np.float32))
                approx = torch.empty((len(z), len(index.R)))
                outs = (np.empty((len(z), m.k_)), np.empty(z.shape), np.zeros(len(z), np.bool_))
                args = (approx.numpy(), z, index.R, index.r_max, m.k_, 0, n_cand,
                        this_module.rounding_unit(), *outs)  # fmt: skip
                work.append((index, q32, approx, args))
    return work


def kernel_ms(module: types.ModuleType, work: list[tuple[Any, ...]], n_batches: int) -> float:
    """CPU ms per batch and per member of ``module``'s kernel (``_search_rows``) alone,
    each chunk right after its product (untimed, as in ``search``: the proposals are
    in cache); both kernels are fed the same float32 proposals."""
    spent = 0.0
    for index, q32, approx, args in work:
        torch.addmm(index.r_sq32, q32, index.RT32, alpha=-2.0, out=approx)
        start = time.process_time()
        module._search_rows(*args)
        spent += time.process_time() - start
    return 1e3 * spent / n_batches


def outputs(det: Detector, module: types.ModuleType, X: np.ndarray) -> list[np.ndarray]:
    """Every output the search decides, under ``module``: the scores of ``X``, and per
    member the search's three outputs on ``X`` and leave-one-out on the reference."""
    scorer = Scorer("bench", "1", det, np.inf, tuple(f"f{i}" for i in range(X.shape[1])))
    with searching_with(det, module):
        got = [scorer.score(X).scores]
    for m in members(det):
        index = module.NeighbourIndex(m.reference_z_)
        got += module.search(m._transform(X), index, m.k_)
        got += module.search(m.reference_z_, index, m.k_, skip_self=True)
    return got


def same_bits(det: Detector, other: types.ModuleType, X: np.ndarray) -> bool:
    theirs, mine = outputs(det, other, X), outputs(det, this_module, X)
    return all(a.tobytes() == b.tobytes() for a, b in zip(theirs, mine, strict=True))


def compare_datasets(directory: Path, other: types.ModuleType, seed: int) -> None:
    print("| dataset | rows | detector | rows fallen back | same bits |")
    print("|---|---:|---|---:|---|")
    for path in sorted(directory.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            X, y = np.asarray(data["X"], dtype=np.float32), np.asarray(data["y"])
        for kind in ("knn", "ensemble"):
            det = make_detector(kind, seed=seed).fit(X[y == 0])
            falls = np.mean([this_module.search(m._transform(X), m.index_, m.k_)[2].mean()
                             for m in members(det)])  # fmt: skip
            same = "yes" if same_bits(det, other, X) else "NO"
            print(f"| {path.stem} | {len(X):,} | {kind} | {falls:.1%} | {same} |")


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
    parser.add_argument("--datasets", type=Path, help="also compare bits on DIR/*.npz")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    other = module_at(args.rev)
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    batches = [T[i : i + args.batch] for i in range(0, len(T) - args.batch + 1, args.batch)]
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"CPU time, one torch thread, OPENBLAS_NUM_THREADS={blas}, medians of {args.repeats}")
    print(f"| detector | search ms per batch per member, {args.rev} | this checkout | ratio "
          f"| kernel ms, {args.rev} | this checkout | ratio | vectors per CPU s, {args.rev} "
          "| this checkout "
          "| ratio | same bits |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for kind in ("knn", "ensemble"):
        for max_reference in REFERENCES:
            det = make_detector(kind, seed=args.seed, max_reference=max_reference).fit(X)
            scorer = Scorer("bench", "1", det, np.inf, tuple(f"f{i}" for i in range(X.shape[1])))
            same = same_bits(det, other, T)
            ms: dict[str, list[float]] = {"old": [], "new": [], "k_old": [], "k_new": []}
            work = kernels(det, batches)
            for module in (other, this_module):
                kernel_ms(module, work, 1)  # compiled, warm
            rate: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.repeats):
                ms["old"].append(search_ms(det, other, batches))
                ms["new"].append(search_ms(det, this_module, batches))
                ms["k_old"].append(kernel_ms(other, work, len(batches) * len(members(det))))
                ms["k_new"].append(kernel_ms(this_module, work, len(batches) * len(members(det))))
                with searching_with(det, other):
                    rate["old"].append(cpu_rate(scorer, batches))
                rate["new"].append(cpu_rate(scorer, batches))
            a, b = statistics.median(ms["old"]), statistics.median(ms["new"])
            e, f = statistics.median(ms["k_old"]), statistics.median(ms["k_new"])
            c, d = statistics.median(rate["old"]), statistics.median(rate["new"])
            name = f"{kind}, max_reference={min(max_reference, len(X))}"
            verdict = "yes" if same else "NO"
            print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {e:.3f} | {f:.3f} | {e / f:.2f}x "
                  f"| {c:,.0f} | {d:,.0f} | {d / c:.2f}x | {verdict} |")  # fmt: skip
    if args.datasets is not None:
        compare_datasets(args.datasets, other, args.seed)


if __name__ == "__main__":
    main()
