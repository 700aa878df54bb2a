"""Dataset discovery, loading and the fit / calibration / test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.bench.datasets import Dataset, evaluation_rows, find_datasets, load_dataset, split
from tripwire.core.errors import ConfigError, DataError
from tripwire.training.data import Dataset as TrainingDataset
from tripwire.training.pipeline import split_dataset


def _data(y: np.ndarray) -> Dataset:
    """Rows whose only feature is their row number."""
    return Dataset("ids", np.arange(y.size, dtype=np.float64)[:, None], y.astype(np.int8))


def _ids(rows: np.ndarray) -> set[int]:
    return set(rows[:, 0].astype(int).tolist())


@settings(max_examples=60, deadline=None)
@given(
    n_normal=st.integers(10, 400),
    n_anomaly=st.integers(1, 50),
    seed=st.integers(0, 2**31),
    order_seed=st.integers(0, 1000),
)
def test_split_parts_are_disjoint_and_every_row_is_used_once(
    n_normal: int, n_anomaly: int, seed: int, order_seed: int
) -> None:
    y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int8)
    y = y[np.random.default_rng(order_seed).permutation(y.size)]
    s = split(_data(y), seed, test_size=0.2, calibration_size=0.2)
    X_eval, y_eval = evaluation_rows(s)
    train, cal, evaluated = _ids(s.train), _ids(s.calibration), _ids(X_eval)
    assert len(train) + len(cal) + len(evaluated) == y.size  # no row twice
    assert train | cal | evaluated == set(range(y.size))
    assert (y[sorted(train)] == 0).all() and (y[sorted(cal)] == 0).all()
    assert set(np.flatnonzero(y == 1).tolist()) <= evaluated  # every anomaly is tested
    assert np.array_equal(y_eval, y[X_eval[:, 0].astype(int)])
    assert len(cal) == max(1, round(0.2 * n_normal))
    assert (y_eval == 0).sum() == round(0.2 * n_normal)


def test_split_is_tripwire_trains_and_seeded() -> None:
    y = np.r_[np.zeros(500), np.ones(20)].astype(np.int8)
    a, b, c = (split(_data(y), seed, 0.2, 0.2) for seed in (0, 0, 1))
    assert np.array_equal(a.train, b.train) and np.array_equal(a.calibration, b.calibration)
    assert not np.array_equal(a.train, c.train)
    ds = TrainingDataset(_data(y).X, y, None, ("f0",), "ids", "")
    assert np.array_equal(a.train, split_dataset(ds, 0.2, 0.2, 0).train)


def test_split_refuses_too_few_normal_rows() -> None:
    with pytest.raises(DataError, match="too few"):
        split(_data(np.array([0, 0, 1, 1])), 0, 0.2, 0.2)
    with pytest.raises(DataError, match="no normal row left for the test split"):
        split(_data(np.r_[np.zeros(5), np.ones(20)]), 0, 0.1, 0.2)


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_load_casts_features_and_labels(tmp_path: Path) -> None:
    X = np.arange(12, dtype=np.uint8).reshape(6, 2)
    path = _write(tmp_path / "7_small.npz", X=X, y=np.array([0, 0, 0, 0, 1, 1], np.int32))
    data = load_dataset(path)
    assert data.name == "7_small"
    assert data.X.dtype == np.float64 and np.array_equal(data.X, X)
    assert data.y.tolist() == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"X": np.zeros((4, 2))}, "missing key"),
        ({"X": np.zeros((4, 2)), "y": np.array([0, 1, 2, 0])}, "labels must be 0"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "both normal"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(3)}, "not \\(n, d\\)"),
        ({"X": np.array([[0.0], [np.nan], [1], [2]]), "y": np.array([0, 0, 1, 0])}, "row 1"),
    ],
)
def test_load_rejects_bad_files(
    tmp_path: Path, arrays: dict[str, np.ndarray], problem: str
) -> None:
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=problem):
        load_dataset(path)


def test_find_datasets_in_natural_order(tmp_path: Path) -> None:
    for name in ("20_b.npz", "2_a.npz", "3_c.npz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_datasets(tmp_path, "*")] == ["2_a.npz", "3_c.npz", "20_b.npz"]
    assert [p.name for p in find_datasets(tmp_path, "2*.npz")] == ["2_a.npz", "20_b.npz"]
    with pytest.raises(ConfigError, match="no .npz files"):
        find_datasets(tmp_path, "9*.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        find_datasets(tmp_path / "missing", "*.npz")
