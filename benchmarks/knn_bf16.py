"""``python -m benchmarks.knn_bf16``: float32 against bf16 proposals in the kNN search.

The certified search (:mod:`tripwire.training.detectors.neighbours`) proposes
candidates with one matrix product per chunk, float32 or bf16, and takes its answer
from float64 recomputation certified by a rounding bound; the proposal only
decides how much exact work is done. One run prints:

1. per ``knn`` / ``ensemble`` and ``max_reference``, each proposal: CPU ms of
   ``neighbours.search`` per 256-row batch for each member, vectors per CPU second
   through ``Scorer.score`` at batch 256, the rows that fell back to the exact
   scan, and whether the scores and contributions are the same bits as the
   float32 path's (medians of ``--repeats``, the two proposals interleaved);
2. for ``ensemble``, the bf16 search's cost and fallbacks against its margin of
   spare candidates (``BF16_CANDIDATE_MARGIN``);
3. per ADBench dataset (``.npz`` with ``X``, ``y``), ``ensemble`` fitted on the
   normal rows under each proposal and scoring every row: the same bits or not
   (scores, contributions, the fit's leave-one-out scores).

CPU time (``time.process_time``) of this process, one torch thread; run with
``OPENBLAS_NUM_THREADS=1``. Data of 1 and 2: the tutorial-like rows of
:mod:`benchmarks.knn_speed`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.knn_speed import members, tutorial_like
from tripwire.core.detector import Detector
from tripwire.core.scorer import Scorer
from tripwire.training.detectors import neighbours
from tripwire.training.detectors.ensemble import KNNEnsemble
from tripwire.training.detectors.knn import KNN
from tripwire.training.detectors.neighbours import NeighbourIndex

#: Forced float32, forced bf16, and the index's own choice (``proposal=None``).
PROPOSALS = ("float32", "bf16", "auto")


def build(R: np.ndarray, name: str) -> NeighbourIndex:
    with forced_proposal(None if name == "auto" else name):
        return NeighbourIndex(R)


def picks(det: Detector) -> str:
    return "/".join(
        f"{m.index_.proposal} ({m.index_.probe_fallback or 0:.0%})" for m in members(det)
    )


BATCH = 256


def cpu_seconds(f: Callable[[], object]) -> float:
    start = time.process_time()
    f()
    return time.process_time() - start


@contextlib.contextmanager
def forced_proposal(name: str | None) -> Iterator[None]:
    """``TRIPWIRE_KNN_PROPOSAL=name`` (unset for None) for the duration."""
    before = os.environ.pop(neighbours.PROPOSAL_VARIABLE, None)
    if name is not None:
        os.environ[neighbours.PROPOSAL_VARIABLE] = name
    try:
        yield
    finally:
        os.environ.pop(neighbours.PROPOSAL_VARIABLE, None)
        if before is not None:
            os.environ[neighbours.PROPOSAL_VARIABLE] = before


@contextlib.contextmanager
def proposal(det: Detector, indexes: dict[str, list[NeighbourIndex]], name: str) -> Iterator[None]:
    """Score ``det``'s members with the ``name`` indexes for the duration."""
    saved = [m.index_ for m in members(det)]
    for m, index in zip(members(det), indexes[name], strict=True):
        m.index_ = index
    try:
        yield
    finally:
        for m, index in zip(members(det), saved, strict=True):
            m.index_ = index


def batches(T: np.ndarray) -> list[np.ndarray]:
    return [T[i : i + BATCH] for i in range(0, len(T) - BATCH + 1, BATCH)]


@dataclass(frozen=True)
class Measured:
    """One detector under one proposal."""

    search_ms: list[float]  # per member, CPU ms of neighbours.search per batch
    rate: float  # Scorer.score vectors per CPU second
    fallback: float  # share of the test rows' searches that fell back
    result: tuple[np.ndarray, np.ndarray]  # score_and_explain of the test rows
    picks: str  # each member's proposal


def measure(det: Detector, T: np.ndarray, repeats: int) -> dict[str, Measured]:
    """Both proposals on ``det``'s own reference rows, repeats interleaved."""
    ms = members(det)
    indexes = {p: [build(m.reference_z_, p) for m in ms] for p in PROPOSALS}
    scorer = Scorer("bench", "1", det, np.inf, tuple(f"f{i}" for i in range(T.shape[1])))
    parts = batches(T)
    Z = [[m._transform(b) for b in parts] for m in ms]
    search_s: dict[str, list[list[float]]] = {p: [[] for _ in ms] for p in PROPOSALS}
    score_s: dict[str, list[float]] = {p: [] for p in PROPOSALS}
    for p in PROPOSALS:  # warm-up: compilation
        with proposal(det, indexes, p):
            scorer.score(parts[0])
    for _ in range(repeats):
        for p in PROPOSALS:
            for j, (m, ix) in enumerate(zip(ms, indexes[p], strict=True)):
                t = cpu_seconds(lambda: [neighbours.search(z, ix, m.k_) for z in Z[j]])  # noqa: B023
                search_s[p][j].append(t / len(parts))
            with proposal(det, indexes, p):
                score_s[p].append(cpu_seconds(lambda: [scorer.score(b) for b in parts]))
    out = {}
    for p in PROPOSALS:
        with proposal(det, indexes, p):
            result = det.score_and_explain(T)
        falls = [neighbours.search(m._transform(T), ix, m.k_)[2].mean()
                 for m, ix in zip(ms, indexes[p], strict=True)]  # fmt: skip
        out[p] = Measured(
            [1e3 * statistics.median(s) for s in search_s[p]],
            len(parts) * BATCH / statistics.median(score_s[p]),
            float(np.mean(falls)),
            (result[0], np.asarray(result[1])),
            "/".join(ix.proposal for ix in indexes[p]),
        )
    return out


def same_bits(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    return all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))


def speed_table(X: np.ndarray, T: np.ndarray, refs: list[int], args: argparse.Namespace) -> str:
    lines = [
        "| detector | max_reference | proposal | search ms per batch, per member |"
        " members' sum | vectors per CPU s | bf16 / float32 | rows fallen back | same bits |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for kind in ("knn", "ensemble"):
        for m in refs:
            det: Detector = (KNN if kind == "knn" else KNNEnsemble)(seed=args.seed, max_reference=m)
            rows = measure(det.fit(X), T, args.repeats)
            base = rows["float32"]
            for p, r in rows.items():
                label = p if p != "auto" else f"auto: {r.picks}"
                lines.append(
                    f"| {kind} | {len(members(det)[0].reference_):,} | {label} |"
                    f" {' / '.join(f'{v:.2f}' for v in r.search_ms)} | {sum(r.search_ms):.2f} |"
                    f" {r.rate:,.0f} | {r.rate / base.rate:.2f}x | {r.fallback:.2%} |"
                    f" {'yes' if same_bits(r.result, base.result) else 'NO'} |"
                )
    return "\n".join(lines)


def margin_table(X: np.ndarray, T: np.ndarray, refs: list[int], args: argparse.Namespace) -> str:
    margins = [int(v) for v in args.margins.split(",")]
    lines = [
        "| max_reference | bf16 margin | search ms per batch, both members | rows fallen back |",
        "|---:|---:|---:|---:|",
    ]
    saved = neighbours.BF16_CANDIDATE_MARGIN
    for m in refs:
        det = KNNEnsemble(seed=args.seed, max_reference=m).fit(X)
        ms = members(det)
        idx = [NeighbourIndex(mem.reference_z_, proposal="bf16") for mem in ms]
        Z = [[mem._transform(b) for b in batches(T)] for mem in ms]
        try:
            for margin in margins:
                neighbours.BF16_CANDIDATE_MARGIN = margin
                for z, ix, mem in zip(Z, idx, ms, strict=True):  # warm-up
                    neighbours.search(z[0], ix, mem.k_)
                times, falls = [], []
                for _ in range(args.repeats):
                    t = 0.0
                    for z, ix, mem in zip(Z, idx, ms, strict=True):
                        t += cpu_seconds(lambda: [neighbours.search(b, ix, mem.k_) for b in z])  # noqa: B023
                    times.append(t / len(Z[0]))
                for z, ix, mem in zip(Z, idx, ms, strict=True):
                    falls += [neighbours.search(b, ix, mem.k_)[2].mean() for b in z]
                lines.append(
                    f"| {len(ms[0].reference_):,} | {margin} |"
                    f" {1e3 * statistics.median(times):.2f} | {np.mean(falls):.2%} |"
                )
        finally:
            neighbours.BF16_CANDIDATE_MARGIN = saved
    return "\n".join(lines)


def adbench_table(folder: Path, seed: int) -> str:
    lines = [
        "| dataset | rows | features | fit (normal) rows | rows fallen back, float32 / bf16"
        " | score all rows, CPU s, float32 / bf16 / auto | auto picks (probe fell back)"
        " | same bits as float32: scores, contributions, LOO (bf16; auto) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for path in sorted(folder.glob("*.npz"), key=lambda p: int(p.name.split("_")[0])):
        with np.load(path) as data:
            X, y = np.asarray(data["X"], dtype=np.float32), np.asarray(data["y"])
        got: dict[str, tuple[tuple[np.ndarray, ...], ...]] = {}
        falls: dict[str, float] = {}
        seconds: dict[str, float] = {}
        for p in PROPOSALS:
            with forced_proposal(None if p == "auto" else p):
                det = KNNEnsemble(seed=seed).fit(X[y == 0])
            det.score_and_explain(X[:BATCH])  # warm-up
            seconds[p] = cpu_seconds(lambda: det.score_and_explain(X))  # noqa: B023
            scores, contrib = det.score_and_explain(X)
            loo = tuple(m.reference_scores_ for m in det.members_)
            got[p] = ((scores,), (np.asarray(contrib),), loo)
            falls[p] = float(np.mean([neighbours.search(m._transform(X), m.index_, m.k_)[2].mean()
                                      for m in det.members_]))  # fmt: skip
            chosen = picks(det)
        same = [
            ", ".join("yes" if same_bits(a, b) else "NO"
                      for a, b in zip(got[p], got["float32"], strict=True))
            for p in ("bf16", "auto")
        ]  # fmt: skip
        lines.append(
            f"| {path.stem} | {len(X):,} | {X.shape[1]} | {int((y == 0).sum()):,} |"
            f" {falls['float32']:.2%} / {falls['bf16']:.2%} |"
            f" {' / '.join(f'{seconds[p]:.2f}' for p in PROPOSALS)} | {chosen} |"
            f" {'; '.join(same)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knn_bf16",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000, help="training rows")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--test-rows", type=int, default=2048)
    parser.add_argument("--references", default="10000,4000,2000,1000", help="max_reference")
    parser.add_argument("--margins", default="8,16,24,32,48", help="bf16 margins to compare")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adbench", type=Path, default=Path("/work/shared/datasets/adbench"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, T = tutorial_like(args.rows, args.test_rows, args.features, args.seed)
    refs = [int(v) for v in args.references.split(",")]
    print(f"CPU: native bf16 products: {neighbours.native_bf16()}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); {args.rows:,} x "
          f"{args.features} tutorial-like rows, {args.test_rows:,} test rows, batch "
          f"{BATCH}, medians of {args.repeats} CPU-time repeats\n")  # fmt: skip
    print(speed_table(X, T, refs, args) + "\n")
    print(margin_table(X, T, refs, args) + "\n")
    if args.adbench.is_dir():
        print(adbench_table(args.adbench, args.seed))


if __name__ == "__main__":
    main()
