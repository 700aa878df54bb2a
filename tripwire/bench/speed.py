"""A detector's in-process scoring rate: vectors/s at a fixed batch size.

Both benchmarks use it: ``tripwire bench quality`` beside each detector's quality,
``tripwire bench stream`` beside each detector's worker throughput. A repeat scores
consecutive batches of ``batch`` rows for at least ``min_seconds`` (one batch at
least); the rate is the median over ``repeats`` repeats, after one warm-up call
(the first call allocates), so one descheduled repeat on a busy host does not move it.

>>> import numpy as np
>>> rate = scoring_rate(lambda X: X.sum(axis=1), np.ones((10, 3)), batch=4, repeats=3)
>>> rate.vectors_per_s > 0 and rate.batch == 4 and len(rate.repeats) == 3
True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Repeats of the quality benchmark's rate column (median taken).
REPEATS = 5


@dataclass(frozen=True)
class ScoringRate:
    """What :func:`scoring_rate` measured.

    Attributes
    ----------
    vectors_per_s : float
        Median over the repeats.
    batch : int
        Rows per call.
    repeats : tuple of float
        Each repeat's vectors/s, in the order measured.
    """

    vectors_per_s: float
    batch: int
    repeats: tuple[float, ...]


def batches_of(X: np.ndarray, batch: int) -> list[np.ndarray]:
    """Consecutive ``batch``-row slices of ``X`` (rows tiled when ``X`` has fewer).

    Raises
    ------
    ValueError
        ``X`` has no rows or ``batch`` < 1.
    """
    if batch < 1 or len(X) == 0:
        raise ValueError(f"need rows and batch >= 1, got {len(X)} rows, batch {batch}")
    if len(X) < batch:
        X = np.resize(X, (batch, *X.shape[1:]))
    return [X[i : i + batch] for i in range(0, len(X) - batch + 1, batch)]


def scoring_rate(
    score: Callable[[np.ndarray], Any], X: np.ndarray, batch: int, repeats: int = REPEATS,
    min_seconds: float = 0.02,
) -> ScoringRate:  # fmt: skip
    """Vectors/s of ``score`` on batches of ``batch`` rows of ``X``, median of ``repeats``.

    Parameters
    ----------
    score : callable
        Scores one batch (shape (batch, d)); its result is ignored.
    X : ndarray of shape (n, d)
        Rows to score; tiled up to ``batch`` rows when ``n < batch``.
    batch, repeats : int
        Rows per call; timed repeats (>= 1).
    min_seconds : float
        Each repeat scores batches until this much wall time has passed.
    """
    chunks = batches_of(X, batch)
    score(chunks[0])  # warm-up
    rates = []
    for _ in range(max(1, repeats)):
        done, i = 0, 0
        started = time.perf_counter()
        while True:
            score(chunks[i % len(chunks)])
            done, i = done + batch, i + 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
        rates.append(done / elapsed)
    return ScoringRate(statistics.median(rates), batch, tuple(rates))
