"""Dataset discovery, loading and the fit / calibration / test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.bench.datasets import find_datasets, load_dataset, split_rows
from tripwire.core.errors import ConfigError, DataError


@settings(max_examples=60, deadline=None)
@given(
    n_normal=st.integers(10, 400),
    n_anomaly=st.integers(1, 50),
    seed=st.integers(0, 2**31),
    order_seed=st.integers(0, 1000),
)
def test_split_parts_are_disjoint_and_cover_every_row(
    n_normal: int, n_anomaly: int, seed: int, order_seed: int
) -> None:
    y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int8)
    y = y[np.random.default_rng(order_seed).permutation(y.size)]
    s = split_rows(y, seed, train_fraction=0.6, calibration_fraction=0.25)
    fit, cal, test = set(s.fit.tolist()), set(s.calibration.tolist()), set(s.test.tolist())
    assert not fit & cal and not fit & test and not cal & test
    assert fit | cal | test == set(range(y.size))
    assert (y[s.fit] == 0).all() and (y[s.calibration] == 0).all()
    assert set(np.flatnonzero(y == 1).tolist()) <= test  # every anomaly is tested
    n_train = round(0.6 * n_normal)
    assert s.fit.size + s.calibration.size == n_train
    assert s.calibration.size == round(0.25 * n_train)


def test_split_is_seeded() -> None:
    y = np.r_[np.zeros(500), np.ones(20)].astype(np.int8)
    a, b, c = split_rows(y, 0), split_rows(y, 0), split_rows(y, 1)
    assert np.array_equal(a.fit, b.fit) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.fit, c.fit)


def test_split_refuses_too_few_normal_rows() -> None:
    with pytest.raises(DataError, match="too few"):
        split_rows(np.array([0, 0, 1, 1]), seed=0)


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
