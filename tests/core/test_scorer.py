"""tripwire.core.scorer: the top features of many rows at once equal those of each row."""

from __future__ import annotations

import numpy as np

from tripwire.core.scorer import Scorer, TopFeature


def reference_top(scorer: Scorer, x: np.ndarray, c: np.ndarray, k: int) -> list[TopFeature]:
    """The straightforward per-row definition: largest contribution first, stable."""
    idx = sorted(range(len(c)), key=lambda i: -c[i])[: min(k, len(c))]
    names = scorer.feature_names
    return [TopFeature(names[i], float(x[i]), float(c[i])) for i in idx]


def scorer_with(n_features: int) -> Scorer:
    names = tuple(f"f{i}" for i in range(n_features))
    return Scorer(name="m", version="1", detector=None, threshold=1.0, feature_names=names)  # type: ignore[arg-type]


def test_top_features_rows_equal_the_per_row_definition() -> None:
    rng = np.random.default_rng(0)
    scorer = scorer_with(12)
    X = rng.normal(size=(200, 12)).astype(np.float32)
    C = rng.exponential(size=(200, 12))
    C[:20, :6] = 1.0  # ties: the earlier feature first, as a stable sort
    for k in (1, 3, 12, 20):
        got = scorer.top_features_rows(X, C, k)
        assert got == [reference_top(scorer, X[r], C[r], k) for r in range(len(X))]
        assert scorer.top_features(X[5], C[5], k) == got[5]


def test_top_features_rows_without_contributions_or_rows() -> None:
    scorer = scorer_with(3)
    X = np.ones((2, 3), dtype=np.float32)
    assert scorer.top_features_rows(X, None, 3) == [[], []]
    assert scorer.top_features_rows(X, np.ones((2, 3)), 0) == [[], []]
    assert scorer.top_features_rows(X[:0], np.ones((0, 3)), 3) == []
