"""The one scoring path shared by ``tripwire score`` and the stream worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.detectors.base import Detector
from training.errors import DetectorError


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one batch.

    Attributes
    ----------
    scores : ndarray of shape (n,)
    is_anomaly : ndarray of bool, shape (n,)
        ``scores > threshold``.
    contributions : ndarray of shape (n, d) or None
    """

    scores: np.ndarray
    is_anomaly: np.ndarray
    contributions: np.ndarray | None


@dataclass(frozen=True)
class Scorer:
    """A loaded model version: detector + threshold + feature schema.

    ``score(X)`` is what both batch scoring and the worker call, so a row gets the
    same score on both paths.
    """

    name: str
    version: str
    detector: Detector
    threshold: float
    feature_names: tuple[str, ...]
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def score(self, X: np.ndarray) -> ScoreResult:
        """Score a batch of shape (n, n_features); higher = more anomalous."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DetectorError(f"expected an array of shape (n, {self.n_features}), got {X.shape}")
        scores, contrib = self.detector.score_and_explain(X)
        scores = np.asarray(scores, dtype=np.float64)
        return ScoreResult(scores, scores > self.threshold, contrib)

    def top_features(
        self, X_row: np.ndarray, contrib_row: np.ndarray | None, k: int
    ) -> list[dict[str, Any]]:
        """The ``k`` features with the largest contribution in one row.

        Returns a list of ``{"name", "value", "contribution"}`` dicts, largest first;
        empty when the detector gives no contributions.
        """
        if contrib_row is None or k <= 0:
            return []
        k = min(k, contrib_row.shape[0])
        idx = np.argpartition(-contrib_row, k - 1)[:k]
        idx = idx[np.argsort(-contrib_row[idx], kind="stable")]
        return [
            {
                "name": self.feature_names[i],
                "value": float(X_row[i]),
                "contribution": float(contrib_row[i]),
            }
            for i in idx
        ]
