"""The threshold contract: turn calibration scores into one anomaly cut-off.

A threshold object sits beside a detector (the detector only scores; higher =
more anomalous). ``fit`` learns ``value_`` from :class:`CalibrationData`, and a row
is an anomaly when its score is strictly greater than ``value_``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from tripwire.core.errors import ConfigError


@dataclass(frozen=True)
class CalibrationData:
    """Scores a threshold may learn from, none of them from the test split.

    Attributes
    ----------
    train_scores : ndarray of shape (n_train,)
        Scores of the rows the detector was fitted on (optimistic: the model has
        seen them).
    normal_scores : ndarray of shape (n_cal,)
        Out-of-sample scores of normal rows: the held-out split, not used for
        fitting the detector, pooled with the detector's scores of training rows
        computed without them where it has some (``Detector.held_out_scores``).
    val_scores : ndarray of shape (n_val,), optional
        Scores of a labelled validation split (held-out normal and anomalous rows).
    val_labels : ndarray of shape (n_val,), optional
        0 = normal, 1 = anomaly, aligned with ``val_scores``.
    """

    train_scores: np.ndarray
    normal_scores: np.ndarray
    val_scores: np.ndarray | None = None
    val_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.val_scores is None) != (self.val_labels is None):
            raise ValueError("val_scores and val_labels go together")
        if self.val_scores is not None and self.val_labels is not None:
            if self.val_scores.shape != self.val_labels.shape:
                raise ValueError(
                    f"val_scores {self.val_scores.shape} and val_labels "
                    f"{self.val_labels.shape} differ in shape"
                )


class Threshold(ABC):
    """Base class of the calibration methods.

    Subclasses set ``method`` (the name used in ``--threshold`` specs and the
    manifest), store their parameters in ``__init__`` and implement ``_fit``.
    """

    method: ClassVar[str] = ""

    def __init__(self) -> None:
        self.value_: float | None = None
        #: How many scores the value rests on, where the method says (manifest "rows").
        self.rows_: int | None = None

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Parameters as JSON-serialisable values."""

    @abstractmethod
    def _fit(self, data: CalibrationData) -> float:
        """The threshold value learnt from ``data``."""

    def fit(self, data: CalibrationData) -> Self:
        """Learn ``value_`` from calibration scores; returns ``self``.

        Raises
        ------
        ConfigError
            The data this method needs is missing (e.g. no labelled anomalies for
            ``f1``) or the learnt value is not finite.
        """
        value = float(self._fit(data))
        if not np.isfinite(value):
            raise ConfigError(f"threshold {self.spec()} calibrated to a non-finite value")
        self.value_ = value
        return self

    @property
    def value(self) -> float:
        if self.value_ is None:
            raise ConfigError(f"threshold {self.spec()} is not fitted")
        return self.value_

    def spec(self) -> str:
        """The ``--threshold`` string that rebuilds this (unfitted) threshold."""
        args = ",".join(f"{v}" for v in self.params.values())
        return f"{self.method}:{args}" if args else self.method

    def to_dict(self) -> dict[str, Any]:
        """``{"method", "params", "value"}`` for the manifest, and ``"rows"`` when known."""
        out = {"method": self.method, "params": self.params, "value": self.value}
        return out if self.rows_ is None else {**out, "rows": self.rows_}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params}, value_={self.value_})"


def finite_scores(scores: np.ndarray | None, what: str, method: str) -> np.ndarray:
    """``scores`` as a non-empty finite float64 vector, or a ConfigError naming the gap."""
    if scores is None or np.size(scores) == 0:
        raise ConfigError(f"threshold {method} needs {what}, and there are none")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise ConfigError(f"threshold {method}: {what} contain NaN/inf")
    return s


def parse_rate(raw: str, name: str, method: str) -> float:
    """A probability strictly between 0 and 1."""
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"threshold {method}: {name} {raw!r} is not a number") from None
    if not 0.0 < v < 1.0:
        raise ConfigError(f"threshold {method}: {name} must be in (0, 1), got {raw}")
    return v
