"""``reference``: which training rows a kNN detector keeps, and what calibrates it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tripwire.core.errors import DetectorError
from tripwire.training.detectors import make_detector
from tripwire.training.detectors.ensemble import KNNEnsemble
from tripwire.training.detectors.knn import KNN, transform
from tripwire.training.detectors.reference import select, sparse_weights


def cloud_and_small_mode(n_cloud: int = 6000, n_mode: int = 20) -> np.ndarray:
    """A dense Gaussian cloud and a small, tight, far-away normal mode (the last rows)."""
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(n_cloud, 4))
    mode = 6.0 + 0.05 * rng.normal(size=(n_mode, 4))
    return np.vstack([cloud, mode]).astype(np.float32)


def identity(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float64)


def test_uniform_keeps_the_seeded_sample_it_always_kept():
    X = cloud_and_small_mode()
    chosen = select(X, 500, 3, "uniform", [identity], 5)
    expected = np.sort(np.random.default_rng(3).choice(len(X), size=500, replace=False))
    np.testing.assert_array_equal(chosen.reference, expected)
    assert chosen.held_out is None  # calibrated by leave-one-out


def test_small_data_keeps_every_row_whatever_the_method():
    X = cloud_and_small_mode(300, 10)
    for method in ("uniform", "sparse"):
        chosen = select(X, 500, 0, method, [identity], 5)
        np.testing.assert_array_equal(chosen.reference, np.arange(len(X)))
        assert chosen.held_out is None


def test_sparse_is_uniform_until_there_are_enough_rows_to_hold_out():
    X = cloud_and_small_mode(1500, 10)  # 1,510 rows < 2 x 1,000
    sparse = select(X, 1000, 2, "sparse", [identity], 5)
    uniform = select(X, 1000, 2, "uniform", [identity], 5)
    np.testing.assert_array_equal(sparse.reference, uniform.reference)
    assert sparse.held_out is None


def test_sparse_keeps_rows_of_a_small_mode_that_uniform_thins_out():
    X = cloud_and_small_mode()
    mode = np.arange(6000, len(X))
    for seed in range(3):
        sparse = select(X, 500, seed, "sparse", [identity], 5).reference
        uniform = select(X, 500, seed, "uniform", [identity], 5).reference
        # uniform keeps ~1.7 of the 20 mode rows: fewer than k, the mode looks anomalous
        assert np.isin(uniform, mode).sum() < 5
        assert np.isin(sparse, mode).sum() >= 5


def test_sparse_calibrates_on_a_disjoint_held_out_sample():
    X = cloud_and_small_mode()
    det = KNNEnsemble(max_reference=500, reference="sparse").fit(X)
    spaces = [partial(transform, scaler=member.scaler_) for member in det.members_]
    chosen = select(X, 500, 0, "sparse", spaces, 5)
    assert chosen.held_out is not None and len(chosen.held_out) == 500
    assert len(np.intersect1d(chosen.held_out, chosen.reference)) == 0
    # the members share the rows; they calibrate on their scores of the held-out rows
    for member in det.members_:
        np.testing.assert_array_equal(member.reference_, X[chosen.reference])
        np.testing.assert_allclose(member.reference_scores_, member.score(X[chosen.held_out]))


def test_sparse_is_deterministic_by_seed():
    X = cloud_and_small_mode()
    a, b, c = (select(X, 500, s, "sparse", [identity], 5) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.reference, b.reference)
    assert not np.array_equal(a.reference, c.reference)


def test_sparse_weights_grow_with_sparsity_and_never_vanish():
    w = sparse_weights(np.array([0.0, 0.5, 0.99, 1.0]))
    assert w[0] == 1.0 and np.all(np.diff(w) > 0)
    np.testing.assert_allclose(w[2], 1 - np.log(0.01))
    assert np.isfinite(w[3])


@pytest.mark.parametrize(
    ("n", "m", "expected"), [(3000, 1000, 2), (20_000, 1000, 1), (800, 1000, 5), (1100, 1000, 5)]
)
def test_scale_k_averages_the_same_share_of_the_data(n: int, m: int, expected: int):
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    assert KNN(max_reference=m, scale_k=True).fit(X).k_ == expected
    assert KNN(max_reference=m).fit(X).k_ == 5


def test_params_state_and_files_round_trip(tmp_path: Path):
    X = cloud_and_small_mode()
    det = make_detector("ensemble", seed=4, max_reference=500, reference="sparse", scale_k=True)
    det.fit(X)
    assert det.get_params()["reference"] == "sparse" and det.get_params()["scale_k"] is True
    assert det.get_state()["k"] == 1
    det.save(tmp_path)
    back = KNNEnsemble.load(tmp_path, det.get_params(), det.get_state())
    assert [m.k_ for m in back.members_] == [1, 1]
    T = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.score(T), det.score(T))


def test_load_refuses_an_untrusted_k_and_accepts_a_state_without_one(tmp_path: Path):
    X = cloud_and_small_mode(300, 10)
    det = KNNEnsemble(max_reference=100, scale_k=True).fit(X)
    det.save(tmp_path)
    params, state = det.get_params(), det.get_state()
    for bad in (0, 6, 100, "many", None):
        with pytest.raises(DetectorError, match="k"):
            KNNEnsemble.load(tmp_path, params, {**state, "k": bad})
    older = {key: value for key, value in state.items() if key != "k"}
    assert KNNEnsemble.load(tmp_path, params, older).members_[0].k_ == 5


@pytest.mark.parametrize("params", [{"reference": "kmeans"}, {"scale_k": "yes"}])
def test_invalid_reduction_params_raise(params):
    with pytest.raises(DetectorError):
        KNNEnsemble(**params)
    with pytest.raises(DetectorError):
        KNN(**params)
