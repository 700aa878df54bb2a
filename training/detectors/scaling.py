"""Per-feature standardisation fitted on training rows and stored with the model.

The deep detectors work in standardised space: ``z = (x - mean) / scale``. The
parameters are small (two floats per feature) and go into the manifest under
``detector.state.scaler`` so a reader can see exactly how inputs were scaled.

>>> import numpy as np
>>> s = Standardizer().fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
>>> s.transform(np.array([[1.0, 5.0]])).tolist()
[[0.0, 0.0]]
>>> Standardizer.from_dict(s.to_dict()).scale_.tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from tripwire.core.errors import DetectorError


class Standardizer:
    """Mean/standard-deviation scaler with a guard for constant features.

    A feature whose standard deviation is zero (or not finite, or so small that
    dividing by it would blow up float32) gets ``scale = 1``: it is centred but
    not stretched, so a constant training column does not turn every deviation
    at scoring time into ``inf``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float32
    scale_ : ndarray of shape (n_features,), float32, all > 0
    """

    #: Standard deviations at or below this are treated as zero.
    MIN_SCALE = 1e-8

    def fit(self, X: np.ndarray) -> Self:
        """Learn mean and scale of each column of ``X`` (n_samples, n_features)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise DetectorError(f"cannot fit a scaler on an array of shape {X.shape}")
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std = np.where(np.isfinite(std) & (std > self.MIN_SCALE), std, 1.0)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = std.astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X`` (n_samples, n_features); returns float32."""
        Z = np.subtract(X, self.mean_, dtype=np.float32)  # same bits as (X - mean) / scale
        Z /= self.scale_
        return Z

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters: ``{"mean": [...], "scale": [...]}``."""
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a fitted scaler from :meth:`to_dict` output."""
        try:
            mean = np.asarray(data["mean"], dtype=np.float32)
            scale = np.asarray(data["scale"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"invalid scaler state: {exc!r}") from exc
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise DetectorError(
                f"invalid scaler state: mean {mean.shape} and scale {scale.shape} differ"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise DetectorError("invalid scaler state: non-finite mean or non-positive scale")
        scaler = cls()
        scaler.mean_ = mean
        scaler.scale_ = scale
        return scaler
