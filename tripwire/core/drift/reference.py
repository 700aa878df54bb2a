"""What a published model's stream is compared against: the drift reference.

Built at publish time from the rows the model was trained on and the held-out
calibration scores its threshold came from, written as one safetensors artifact
(``drift_reference.safetensors``, hashed in the manifest like every artifact) and
read back from untrusted bytes: :meth:`DriftReference.from_arrays` checks every
shape, dtype and value before a monitor uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.drift.statistics import bin_counts
from tripwire.core.errors import RegistryError

REFERENCE_FILE = "drift_reference.safetensors"
#: Format of the arrays in ``REFERENCE_FILE``; a reader refuses a newer one.
REFERENCE_FORMAT = 1
#: Quantile bins per feature (deciles).
DEFAULT_BINS = 10
#: Calibration scores kept (a seeded sample beyond this).
MAX_SCORES = 100_000
_MAX_BINS = 256


@dataclass(frozen=True)
class DriftReference:
    """Reference distributions of one model version.

    Attributes
    ----------
    scores : ndarray (N_cal,)
        Held-out calibration scores, sorted ascending.
    threshold : float
        The alert threshold (``score > threshold`` alerts).
    calibration_alerts : int
        Calibration scores above ``threshold`` (the calibrated alert count).
    edges : ndarray (d, B - 1)
        Per-feature interior quantile edges of the training rows (the summary).
    probs : ndarray (d, B)
        Share of training rows in each bin of those edges.
    mean, std : ndarray (d,)
        Per-feature training mean and standard deviation (to report shifts in sd).
    reference_rows : int
        Training rows the edges were estimated from.
    """

    scores: np.ndarray
    threshold: float
    calibration_alerts: int
    edges: np.ndarray
    probs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    reference_rows: int

    @property
    def n_features(self) -> int:
        return int(self.edges.shape[0])

    @property
    def calibration_rows(self) -> int:
        return len(self.scores)

    @classmethod
    def build(
        cls,
        train: np.ndarray,
        calibration_scores: np.ndarray,
        threshold: float,
        bins: int = DEFAULT_BINS,
        seed: int = 0,
    ) -> DriftReference:
        """The reference of a model fitted on ``train`` (n, d) and calibrated on scores."""
        X = np.asarray(train, dtype=np.float64)
        levels = np.arange(1, bins) / bins
        edges = np.ascontiguousarray(np.quantile(X, levels, axis=0).T)
        counts = bin_counts(X, edges)
        scores = np.asarray(calibration_scores, dtype=np.float64)
        if len(scores) > MAX_SCORES:
            scores = np.random.default_rng(seed).choice(scores, MAX_SCORES, replace=False)
        return cls(
            scores=np.sort(scores),
            threshold=float(threshold),
            calibration_alerts=int((scores > threshold).sum()),
            edges=edges,
            probs=counts / len(X),
            mean=X.mean(axis=0),
            std=X.std(axis=0),
            reference_rows=len(X),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for a safetensors file (scalars as one-element arrays)."""
        return {
            "format": np.array([REFERENCE_FORMAT], np.int64),
            "scores": self.scores,
            "threshold": np.array([self.threshold]),
            "calibration_alerts": np.array([self.calibration_alerts], np.int64),
            "edges": self.edges,
            "probs": self.probs,
            "mean": self.mean,
            "std": self.std,
            "reference_rows": np.array([self.reference_rows], np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int) -> DriftReference:
        """Rebuild from untrusted arrays; ``RegistryError`` naming the first problem."""
        fmt = _scalar(arrays, "format", np.int64)
        if fmt != REFERENCE_FORMAT:
            raise RegistryError(f"drift reference format {fmt} (this Tripwire reads 1)")
        edges = _array(arrays, "edges", 2)
        d, n_bins = n_features, edges.shape[1] + 1
        if edges.shape[0] != d or not 2 <= n_bins <= _MAX_BINS:
            raise RegistryError(f"drift reference edges of shape {edges.shape} for {d} features")
        if np.any(np.diff(edges, axis=1) < 0):
            raise RegistryError("drift reference edges are not sorted")
        probs = _array(arrays, "probs", 2)
        if probs.shape != (d, n_bins) or np.any(probs < 0):
            raise RegistryError(f"drift reference probs of shape {probs.shape}, or negative")
        if not np.allclose(probs.sum(axis=1), 1.0):
            raise RegistryError("drift reference probs do not sum to 1 per feature")
        scores = _array(arrays, "scores", 1)
        if len(scores) < 1 or np.any(np.diff(scores) < 0):
            raise RegistryError("drift reference scores are empty or not sorted")
        mean, std = _array(arrays, "mean", 1), _array(arrays, "std", 1)
        if mean.shape != (d,) or std.shape != (d,) or np.any(std < 0):
            raise RegistryError("drift reference mean/std do not match the features")
        alerts = _scalar(arrays, "calibration_alerts", np.int64)
        rows = _scalar(arrays, "reference_rows", np.int64)
        if not 0 <= alerts <= len(scores) or rows < 1:
            raise RegistryError(f"drift reference counts out of range ({alerts}, {rows})")
        threshold = float(_array(arrays, "threshold", 1)[0])
        return cls(scores, threshold, int(alerts), edges, probs, mean, std, int(rows))


def _array(arrays: dict[str, np.ndarray], key: str, ndim: int) -> np.ndarray:
    a = arrays.get(key)
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.ndim != ndim:
        raise RegistryError(f"drift reference: {key!r} is not a {ndim}-d float64 array")
    if not np.all(np.isfinite(a)):
        raise RegistryError(f"drift reference: {key!r} has non-finite values")
    return a


def _scalar(arrays: dict[str, np.ndarray], key: str, dtype: Any) -> int:
    a = arrays.get(key)
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != (1,):
        raise RegistryError(f"drift reference: {key!r} is not a one-element {dtype.__name__}")
    return int(a[0])


#: The manifest section that says a version has a drift reference.
MANIFEST_KEY = "drift_reference"


def reference_manifest(reference: DriftReference) -> dict[str, Any]:
    """The manifest section naming the artifact (the file itself is hashed as one)."""
    return {
        MANIFEST_KEY: {
            "artifact": REFERENCE_FILE,
            "format": REFERENCE_FORMAT,
            "bins": reference.probs.shape[1],
            "reference_rows": reference.reference_rows,
            "calibration_rows": reference.calibration_rows,
            "calibration_alerts": reference.calibration_alerts,
        }
    }


def save_reference(reference: DriftReference, directory: Path) -> str:
    """Write ``REFERENCE_FILE`` into ``directory``; returns its name (an artifact)."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in reference.to_arrays().items()}
    save_file(arrays, str(directory / REFERENCE_FILE))
    return REFERENCE_FILE


def read_reference(path: Path, n_features: int) -> DriftReference:
    """Parse a reference file (never unpickles); ``RegistryError`` if it is not one."""
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for bad files
        raise RegistryError(f"cannot read the drift reference {path.name}: {e}") from e
    return DriftReference.from_arrays(arrays, n_features)


__all__ = [
    "DEFAULT_BINS",
    "MANIFEST_KEY",
    "REFERENCE_FILE",
    "REFERENCE_FORMAT",
    "DriftReference",
    "read_reference",
    "reference_manifest",
    "save_reference",
]
