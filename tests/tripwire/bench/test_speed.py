"""The in-process scoring rate both benchmarks report."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.bench.speed import batches_of, scoring_rate


def test_batches_are_consecutive_and_tiled_when_short() -> None:
    X = np.arange(10.0).reshape(10, 1)
    assert [b[:, 0].tolist() for b in batches_of(X, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    (short,) = batches_of(X[:3], 5)
    assert short[:, 0].tolist() == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="batch"):
        batches_of(X[:0], 4)


def test_the_rate_is_the_median_of_the_repeats_over_every_scored_row() -> None:
    seen: list[int] = []

    def score(X: np.ndarray) -> None:
        seen.append(len(X))

    rate = scoring_rate(score, np.zeros((600, 2)), batch=256, repeats=3, min_seconds=0.001)
    assert set(seen) == {256} and len(rate.repeats) == 3
    assert rate.vectors_per_s == sorted(rate.repeats)[1] > 0
