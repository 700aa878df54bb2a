"""The detector contract every model in Tripwire implements.

A detector is one class: ``__init__`` stores hyperparameters only, ``fit(X)`` learns
from normal rows and returns ``self`` (fitted attributes end in ``_``), and
``score(X)`` returns one float per row, **higher = more anomalous**. The
anomaly/normal decision is not the detector's: a threshold object sits beside it
(see ``tripwire.training.thresholds``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np


class Detector(ABC):
    """Base class for all detectors.

    Subclasses set ``kind`` (the registry/CLI name, e.g. ``"ae"``) and implement
    ``fit``, ``score_and_explain``, ``save`` and ``load``.
    """

    kind: ClassVar[str] = ""
    #: False for detectors whose score of a row depends on the other rows of the
    #: batch; the stream worker refuses those.
    batch_independent: ClassVar[bool] = True

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as JSON-serialisable values (recorded in the manifest)."""

    @abstractmethod
    def fit(self, X: np.ndarray) -> Self:
        """Learn normal behaviour from ``X`` of shape (n_samples, n_features)."""

    @abstractmethod
    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Score rows and say which features drove each score.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Anomaly scores; higher = more anomalous.
        contributions : ndarray of shape (n_samples, n_features) or None
            Non-negative per-feature contribution to each score, or ``None`` when
            the detector cannot attribute its score to features.
        """

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row, shape (n_samples,); higher = more anomalous."""
        scores, _ = self.score_and_explain(X)
        return scores

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the fitted state into ``directory``; return the file names written."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Rebuild a fitted detector from files in ``directory``.

        ``params`` are the hyperparameters from ``get_params``; ``state`` is the
        JSON-serialisable dict returned by ``get_state`` (recorded in the manifest).
        Loading must never execute code from the registry (no unverified pickle).
        """

    def get_state(self) -> dict[str, Any]:
        """Small fitted state that belongs in the manifest (e.g. feature count)."""
        return {}

    def held_out_scores(self) -> np.ndarray | None:
        """Scores (n,) of training rows, each computed without that row, or ``None``.

        Out-of-sample scores of normal rows (e.g. leave-one-out), exchangeable with
        the scores of new normal rows, that threshold calibration may pool with the
        held-out split. Only right after ``fit``; ``None`` when the detector has none.
        """
        return None
