"""``python -m benchmarks.knn_speed``: in-process ``Scorer.score`` rate of ``knn`` and
``ensemble``, the certified search against the search on main before it.

``--every-detector`` adds issue 12's target configuration for every built-in kind
(and ``ensemble`` with smaller ``max_reference``): vectors per wall second and per
CPU second of the process, the latter being what a busy host moves least.

The old search (``legacy_nearest``, kept here only to be measured) is main's up to
commit 30591f7: one float64 product per chunk, ``numpy.argpartition`` over the whole
distance matrix, then a float64 recomputation of ``k + 8`` candidates. The new one
is :mod:`tripwire.training.detectors.neighbours`. Both score the same detector (same
reference rows, same surprise maps) through ``Scorer.score``; each repeat scores
whole batches of the test rows, the table shows medians over repeats, the ratio new
/ old, and the largest score difference between the two (float rounding only).

Data: a seeded tutorial-like set, normal rows ``N(5, 0.85^2)`` per feature and test
rows 80% normal, 20% uniform in [-5, 5] (as ``pyod.utils.data.generate_data``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tripwire.core.detector import Detector
from tripwire.core.scorer import Scorer
from tripwire.training.detectors import knn as knn_module
from tripwire.training.detectors import make_detector, neighbours
from tripwire.training.detectors.ensemble import KNNEnsemble
from tripwire.training.detectors.knn import KNN

#: Reference sizes of the reduced ``ensemble`` rows of ``--every-detector``.
REDUCED_REFERENCES = (4000, 2000, 1000)


class LegacyIndex:
    """Main's brute-force index (features > 12): float64 ``-2 R^T`` and ``|r|^2``."""

    def __init__(self, R: np.ndarray) -> None:
        self.R = R
        self.neg2_rt = np.ascontiguousarray(-2.0 * R.T)
        self.r_sq = np.einsum("ij,ij->i", R, R)


def legacy_nearest(
    Q: np.ndarray, index: LegacyIndex, k: int, skip_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Main's ``nearest`` for its brute-force path, verbatim in substance."""
    drop = int(skip_self)
    R = index.R
    m, d = R.shape
    n_cand = min(m, k + drop + 8)
    step = max(1, min(256, (1 << 22) // max(n_cand * d, m)))
    dist, sq_diff = np.empty((len(Q), k)), np.empty(Q.shape)
    for start in range(0, len(Q), step):
        q = Q[start : start + step]
        approx = q @ index.neg2_rt
        approx += index.r_sq
        idx = np.sort(np.argpartition(approx, n_cand - 1, axis=1)[:, :n_cand], axis=1)
        diff = q[:, None, :] - R[idx]
        sq = diff * diff
        d2 = sq.sum(axis=2)
        order = np.argsort(d2, axis=1, kind="stable")[:, drop : drop + k]
        rows = np.arange(len(q))[:, None]
        dist[start : start + len(q)] = np.sqrt(d2[rows, order])
        sq_diff[start : start + len(q)] = sq[rows, order].mean(axis=1)
    return dist, sq_diff


def members(det: Detector) -> list[KNN]:
    return list(det.members_) if isinstance(det, KNNEnsemble) else [det]  # type: ignore[list-item]


@contextlib.contextmanager
def legacy_search(det: Detector) -> Iterator[None]:
    """Score ``det`` with main's search for the duration (indexes swapped back after)."""
    saved = [m.index_ for m in members(det)]
    original = knn_module.nearest
    for m in members(det):
        m.index_ = LegacyIndex(m.reference_z_)  # type: ignore[assignment]
    knn_module.nearest = legacy_nearest  # type: ignore[assignment]
    try:
        yield
    finally:
        knn_module.nearest = original
        for m, index in zip(members(det), saved, strict=True):
            m.index_ = index


def tutorial_like(n_train: int, n_test: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(5.0, 0.85, size=(n_train, d))
    n_out = n_test // 5
    T = np.vstack([rng.normal(5.0, 0.85, size=(n_test - n_out, d)),
                   rng.uniform(-5, 5, size=(n_out, d))])  # fmt: skip
    return X.astype(np.float32), T[rng.permutation(n_test)].astype(np.float32)


def rate(score: Callable[[np.ndarray], object], T: np.ndarray, batch: int, repeats: int) -> float:
    """Median vectors per wall second over ``repeats`` passes over ``T`` in batches of ``batch``."""
    score(T[:batch])  # warm-up: compilation, caches
    return statistics.median(one_pass(score, T, batch)[0] for _ in range(repeats))


def fit_seconds(X: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds to fit one ``knn`` (its leave-one-out scores dominate): old, new."""
    det = KNN(seed=args.seed, max_reference=args.rows)
    start = time.perf_counter()
    det.fit(X)
    new = time.perf_counter() - start
    original = (knn_module.nearest, knn_module.NeighbourIndex)
    knn_module.nearest, knn_module.NeighbourIndex = legacy_nearest, LegacyIndex  # type: ignore[assignment,misc]
    try:
        start = time.perf_counter()
        det.fit(X)
        old = time.perf_counter() - start
    finally:
        knn_module.nearest, knn_module.NeighbourIndex = original  # type: ignore[misc]
    return old, new


@dataclass(frozen=True)
class Row:
    detector: str
    old: float
    new: float
    fallback: float
    max_diff: float


def measure(name: str, det: Detector, T: np.ndarray, args: argparse.Namespace) -> Row:
    scorer = Scorer("bench", "1", det, np.inf, tuple(f"f{i}" for i in range(T.shape[1])))
    new = rate(scorer.score, T, args.batch, args.repeats)
    new_scores = scorer.score(T).scores
    falls = [neighbours.search(m._transform(T), m.index_, m.k_)[2].mean() for m in members(det)]
    with legacy_search(det):
        n_old = max(args.batch, len(T) // 8 // args.batch * args.batch)
        old = rate(scorer.score, T[:n_old], args.batch, args.old_repeats)
        old_scores = scorer.score(T).scores
    diff = float(np.max(np.abs(new_scores - old_scores)))
    return Row(name, old, new, float(np.mean(falls)), diff)


def markdown(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"`Scorer.score` at batch {args.batch}, {torch.get_num_threads()} thread(s), "
        f"{args.rows:,} reference rows x {args.features} features; medians of "
        f"{args.repeats} (new) / {args.old_repeats} (old) repeats.",
        "",
        "| detector | old vectors/s | new vectors/s | new / old | rows fallen back |"
        " max abs score diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.detector} | {r.old:,.0f} | {r.new:,.0f} | {r.new / r.old:.1f}x |"
            f" {100 * r.fallback:.2f}% | {r.max_diff:.1e} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Rate:
    """Median ``Scorer.score`` vectors per wall second and per CPU second."""

    wall: float
    cpu: float


def every_detector(seed: int) -> dict[str, Detector]:
    """Every built-in kind with its defaults, then ``ensemble`` with smaller references."""
    out = {name: make_detector(name, seed=seed) for name in ("ensemble", "knn", "ae", "vae")}
    for m in REDUCED_REFERENCES:
        out[f"ensemble, max_reference={m}"] = make_detector("ensemble", seed=seed, max_reference=m)
    return out


def candidate_rates(detectors: dict[str, Detector], args: argparse.Namespace) -> dict[str, Rate]:
    """The rates of each unfitted detector, fitted on the same tutorial-like
    ``args.rows`` x ``args.features`` rows, at batch ``args.batch``.

    The candidates take turns: each repeat times one pass of every candidate, in an
    order that alternates between repeats (ABC, CBA, ...), so a slow moment of a
    shared host costs every candidate alike and the ratios between them hold.
    """
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    names = tuple(f"f{i}" for i in range(X.shape[1]))
    scorers = {n: Scorer("bench", "1", det.fit(X), np.inf, names) for n, det in detectors.items()}
    walls: dict[str, list[float]] = {n: [] for n in scorers}
    cpus: dict[str, list[float]] = {n: [] for n in scorers}
    for scorer in scorers.values():
        scorer.score(T[: args.batch])  # warm-up: compilation, caches
    order = list(scorers)
    for _ in range(args.repeats):
        for name in order:
            wall, cpu = one_pass(scorers[name].score, T, args.batch)
            walls[name].append(wall)
            cpus[name].append(cpu)
        order.reverse()
    return {n: Rate(statistics.median(walls[n]), statistics.median(cpus[n])) for n in scorers}


def one_pass(
    score: Callable[[np.ndarray], object], T: np.ndarray, batch: int
) -> tuple[float, float]:
    """Vectors per wall second and per CPU second of one pass over ``T``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(T) - batch + 1, batch):
        score(T[i : i + batch])
    scored = (len(T) // batch) * batch
    return scored / (time.perf_counter() - start), scored / (time.process_time() - start_cpu)


def candidates_markdown(rates: dict[str, Rate], args: argparse.Namespace) -> str:
    lines = [
        f"Every detector at the target configuration: `Scorer.score` at batch {args.batch}, "
        f"{torch.get_num_threads()} torch thread(s), {args.rows:,} training rows x "
        f"{args.features} features, medians of {args.repeats} repeats.",
        "",
        "| detector | vectors/s (wall) | vectors per CPU second |",
        "|---|---:|---:|",
    ]
    lines += [f"| {n} | {r.wall:,.0f} | {r.cpu:,.0f} |" for n, r in rates.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knn_speed",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000, help="reference (training) rows")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--test-rows", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9, help="repeats of the new search")
    parser.add_argument("--old-repeats", type=int, default=5, help="repeats of the old search")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--every-detector",
        action="store_true",
        help="also rate every built-in kind and reduced-reference ensembles",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    detectors: dict[str, Detector] = {
        "knn": KNN(seed=args.seed, max_reference=args.rows).fit(X),
        "ensemble": KNNEnsemble(seed=args.seed, max_reference=args.rows).fit(X),
    }
    print(markdown([measure(n, d, T, args) for n, d in detectors.items()], args))
    old, new = fit_seconds(X, args)
    print(f"\n`knn` fit (leave-one-out scores of the reference rows): old {old:.2f} s,"
          f" new {new:.2f} s ({old / new:.1f}x)")  # fmt: skip
    if args.every_detector:
        print("\n" + candidates_markdown(candidate_rates(every_detector(args.seed), args), args))


if __name__ == "__main__":
    main()
