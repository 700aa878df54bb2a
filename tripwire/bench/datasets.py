"""Datasets of a quality benchmark: finding, loading and splitting labelled ``.npz`` files.

A dataset file holds ``X`` (n, d) and ``y`` (n,) with ``y = 1`` for an anomaly.
``split`` gives one seed's train / calibration / test rows, split by ``tripwire
train``'s own code (``tripwire.training.pipeline.split_dataset``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.errors import ConfigError, DataError
from tripwire.training.data import Dataset as TrainingDataset
from tripwire.training.pipeline import Splits, split_dataset
from tripwire.training.textdata import positional_names


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset: ``X`` (n, d) float64, ``y`` (n,) int8 with 1 = anomaly."""

    name: str
    X: np.ndarray
    y: np.ndarray


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


def split(data: Dataset, seed: int, test_size: float, calibration_size: float) -> Splits:
    """One seed's split, made by ``tripwire train``'s own ``split_dataset``.

    The same file, seed and sizes give ``tripwire train`` the same training,
    calibration and test rows; ``X`` stays float64 here (Tripwire's detectors are
    fed float32 rows, as ``tripwire train`` loads them; PyOD's get float64).

    Raises
    ------
    DataError
        Too few normal rows to train, calibrate and test.
    """
    ds = TrainingDataset(
        data.X, data.y, None, positional_names(data.X.shape[1]), data.name, "", named=False
    )
    splits = split_dataset(ds, test_size, calibration_size, seed)
    if splits.test_y is None or not (splits.test_y == 0).any():
        raise DataError(data.name, f"no normal row left for the test split (test size {test_size})")
    return splits


def evaluation_rows(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The rows a quality run is judged on: the test split and every other anomaly.

    ``tripwire train`` keeps the anomalies outside its test split for the ``f1``
    threshold only; the ``fpr`` threshold never sees an anomaly, so the benchmark
    tests on all of them (more anomalies, steadier ROC- and PR-AUC). The false
    positive rate is unchanged: it is the test split's normal rows'.

    Returns
    -------
    X : ndarray of shape (n_test + n_val, d)
    y : ndarray of int8, shape (n_test + n_val,)
    """
    assert splits.test_X is not None and splits.test_y is not None
    X = np.concatenate([splits.test_X, splits.val_anomalies])
    y = np.concatenate([splits.test_y, np.ones(len(splits.val_anomalies), np.int8)])
    return X, y.astype(np.int8)
