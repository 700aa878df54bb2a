"""``python -m benchmarks.knn_bf16``: would bf16 proposals keep the kNN search exact and fast?

A what-if for issue 12's speed target, not a code path of Tripwire. The certified
search (:mod:`tripwire.training.detectors.neighbours`) only uses the float32 product
to *propose* candidates; its answer comes from float64 recomputation and a rounding
bound. With rows rounded to bfloat16 (unit ``u = 2^-8``), products exact in float32,
float32 sums in any order and a bf16 result, every approximate squared distance is
within ``eps = 2 (3u + (d + 2) 2^-24) |q| max|r|`` of the exact one (Cauchy-Schwarz
on ``sum |q_t r_t|``). A row is then certified at least when the
``(k + margin + 1)``-th smallest exact squared distance exceeds the ``k``-th by more
than ``2 eps``; this prints that share of rows for a few margins, beside the time of
one bf16 and one float32 product (CPU time, medians), on the tutorial-like rows of
:mod:`benchmarks.knn_speed`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.knn_speed import tutorial_like
from tripwire.training.detectors.knn import KNN

MARGINS = (8, 16, 32)


def cpu_ms(f: Callable[[], object], repeats: int) -> float:
    """Median CPU milliseconds of one call of ``f``."""
    f()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(4):
            f()
        times.append((time.process_time() - start) / 4)
    return 1e3 * statistics.median(times)


def bf16_bound(Z: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Per query row of ``Z`` (n, d): bound on ``|-2 bf16(q) . bf16(r) - (-2 q . r)|``
    over every reference row ``r`` of ``R`` (m, d), product summed in float32 in any
    order and rounded to bf16."""
    scale = 2 * (3 * 2.0**-8 + (R.shape[1] + 2) * 2.0**-24) * np.linalg.norm(R, axis=1).max()
    return np.asarray(scale * np.linalg.norm(Z, axis=1))


def certified_share(det: KNN, T: np.ndarray, margin: int) -> float:
    """Share of rows of ``T`` a bf16 proposal with ``margin`` extra candidates certifies."""
    R, Z = det.reference_z_, det._transform(T)
    # float64 expansion: ample for ranking (no bit-exactness needed here)
    d2 = (Z * Z).sum(axis=1)[:, None] + (R * R).sum(axis=1)[None, :] - 2.0 * Z @ R.T
    d2 = np.sort(d2, axis=1)
    eps, k = bf16_bound(Z, R), det.k_
    return float(np.mean(d2[:, k + margin] - 2 * eps > d2[:, k - 1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knn_bf16",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000, help="training rows")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--test-rows", type=int, default=1024)
    parser.add_argument("--references", default="10000,4000,2000", help="max_reference values")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    q = torch.from_numpy(T[:256])
    heads = " | ".join(f"certified, margin {m}" for m in MARGINS)
    print(f"| reference rows | scaling | fp32 product ms | bf16 product ms | {heads} |")
    print("|---:|---|---:|---:|" + "---:|" * len(MARGINS))
    for m in (int(v) for v in args.references.split(",")):
        for scaling in ("none", "standard"):
            det = KNN(seed=args.seed, scaling=scaling, max_reference=m).fit(X)
            rt = torch.from_numpy(np.ascontiguousarray(det.reference_z_.T, dtype=np.float32))
            fp32 = cpu_ms(lambda: torch.mm(q, rt), args.repeats)  # noqa: B023 - called now
            qb, rtb = q.bfloat16(), rt.bfloat16()
            bf16 = cpu_ms(lambda: torch.mm(qb, rtb).float(), args.repeats)  # noqa: B023
            shares = " | ".join(f"{certified_share(det, T, g):.1%}" for g in MARGINS)
            print(f"| {len(det.reference_):,} | {scaling} | {fp32:.2f} | {bf16:.2f} | {shares} |")


if __name__ == "__main__":
    main()
