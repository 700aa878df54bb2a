"""Datasets of a quality benchmark: finding, loading and splitting labelled ``.npz`` files.

A dataset file holds ``X`` (n, d) and ``y`` (n,) with ``y = 1`` for an anomaly.
``split_rows`` gives one seed's disjoint fit / calibration / test row indices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset: ``X`` (n, d) float64, ``y`` (n,) int8 with 1 = anomaly."""

    name: str
    X: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Split:
    """Row indices of one seed's split; the three sets are disjoint.

    Attributes
    ----------
    fit : ndarray of int, shape (n_fit,)
        Normal rows the detector is fitted on.
    calibration : ndarray of int, shape (n_cal,)
        Normal rows, not fitted on, that set the threshold.
    test : ndarray of int, shape (n_test,)
        The other normal rows and every anomaly.
    """

    fit: np.ndarray
    calibration: np.ndarray
    test: np.ndarray


def find_datasets(folder: Path, pattern: str) -> list[Path]:
    """The ``.npz`` files of ``folder`` matching ``pattern``, in natural order."""
    if not folder.is_dir():
        raise ConfigError(f"datasets folder {folder} does not exist")
    paths = [p for p in folder.glob(pattern) if p.is_file() and p.suffix == ".npz"]
    if not paths:
        raise ConfigError(f"no .npz files matching {pattern!r} in {folder}")

    def natural(p: Path) -> tuple[Any, ...]:
        return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.stem))

    return sorted(paths, key=natural)


def load_dataset(path: Path) -> Dataset:
    """Read ``X`` and ``y`` from an ``.npz`` file and check them.

    Raises
    ------
    DataError
        Missing keys, wrong shapes, non-finite features, labels other than 0/1, or
        no normal or no anomalous row.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "y") if k not in data]
            if missing:
                raise DataError(str(path), f"missing key(s) {', '.join(missing)}")
            X = np.asarray(data["X"], dtype=np.float64)
            y_raw = np.asarray(data["y"])
    except (OSError, ValueError) as e:
        raise DataError(str(path), f"not a readable .npz file: {e}") from e
    if X.ndim != 2 or y_raw.ndim != 1 or X.shape[0] != y_raw.shape[0]:
        raise DataError(str(path), f"X {X.shape} and y {y_raw.shape} are not (n, d) and (n,)")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise DataError(str(path), "non-finite feature value", row=int(bad[0]))
    if not np.isin(y_raw, (0, 1)).all():
        raise DataError(str(path), "labels must be 0 (normal) or 1 (anomaly)")
    y = y_raw.astype(np.int8)
    if y.all() or not y.any():
        raise DataError(str(path), "needs both normal (y=0) and anomalous (y=1) rows")
    return Dataset(path.stem, X, y)


def split_rows(
    y: np.ndarray, seed: int, train_fraction: float = 0.6, calibration_fraction: float = 0.25
) -> Split:
    """Split rows for one seed (see the module docstring).

    Parameters
    ----------
    y : ndarray of shape (n,)
        Labels, 1 = anomaly.
    seed : int
    train_fraction : float
        Share of the normal rows used for fitting + calibration.
    calibration_fraction : float
        Share of those training rows held out for the threshold.

    Raises
    ------
    DataError
        Too few normal rows to give every part at least one row.
    """
    normal = np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    normal = normal[rng.permutation(normal.size)]
    n_train = int(round(train_fraction * normal.size))
    n_cal = int(round(calibration_fraction * n_train))
    if n_cal < 1 or n_train - n_cal < 1 or normal.size - n_train < 1:
        raise DataError("<split>", f"{normal.size} normal rows are too few to split")
    test = np.concatenate([normal[n_train:], np.flatnonzero(y == 1)])
    return Split(
        fit=np.sort(normal[n_cal:n_train]),
        calibration=np.sort(normal[:n_cal]),
        test=np.sort(test),
    )
