"""The one scoring path shared by ``tripwire score`` and the stream worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError


@dataclass(frozen=True, slots=True)
class TopFeature:
    """One of the features that contributed most to a row's score.

    >>> TopFeature("f7", 9.1, 4.2).to_json()
    {'name': 'f7', 'value': 9.1, 'contribution': 4.2}
    """

    name: str
    #: The feature's value in the row.
    value: float
    #: Its non-negative contribution to the score (see ``Detector.score_and_explain``).
    contribution: float

    def to_json(self) -> dict[str, Any]:
        """The alert's ``top_features[]`` entry: ``{"name", "value", "contribution"}``."""
        return {"name": self.name, "value": self.value, "contribution": self.contribution}


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
    ) -> list[TopFeature]:
        """The ``k`` features with the largest contribution in one row.

        Largest first (equal contributions in feature order); empty when the detector
        gives no contributions.
        """
        contrib = None if contrib_row is None else contrib_row[None, :]
        return self.top_features_rows(X_row[None, :], contrib, k)[0]

    def top_features_rows(
        self, X: np.ndarray, contributions: np.ndarray | None, k: int
    ) -> list[list[TopFeature]]:
        """:meth:`top_features` of every row of ``X`` (m, d), in one vectorised pass."""
        if contributions is None or k <= 0 or not len(X):
            return [[] for _ in range(len(X))]
        idx = np.argsort(-contributions, axis=1, kind="stable")[:, :k]  # ties: lower index
        values = np.take_along_axis(X, idx, axis=1).astype(np.float64).tolist()
        contribs = np.take_along_axis(contributions, idx, axis=1).astype(np.float64).tolist()
        names = self.feature_names
        return [
            [TopFeature(names[i], v, c) for i, v, c in zip(row, vs, cs, strict=True)]
            for row, vs, cs in zip(idx.tolist(), values, contribs, strict=True)
        ]
