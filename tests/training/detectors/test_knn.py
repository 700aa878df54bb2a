"""``knn``: exact neighbour search, leave-one-out reference scores, scaling, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.knn import KNN, REFERENCE_FILE
from tripwire.training.detectors.neighbours import NeighbourIndex, nearest


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, d))
    return (centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("d", [3, 20])
def test_nearest_matches_sklearn_exact_search(d):
    R = blobs(500, d).astype(np.float64)
    Q = blobs(80, d, seed=1).astype(np.float64)
    dist, _ = nearest(Q, NeighbourIndex(R), k=7)
    expected, _ = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(R).kneighbors(Q)
    np.testing.assert_allclose(dist, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", [3, 20])
def test_leave_one_out_equals_searching_without_the_row(d):
    R = blobs(120, d).astype(np.float64)
    loo, _ = nearest(R, NeighbourIndex(R), k=4, skip_self=True)
    for i in (0, 17, 119):
        others = np.delete(R, i, axis=0)
        alone, _ = nearest(R[i : i + 1], NeighbourIndex(others), k=4)
        np.testing.assert_allclose(loo[i], alone[0], rtol=1e-12)


def test_duplicates_of_a_row_count_as_neighbours_at_distance_zero():
    R = np.repeat(blobs(10, 3).astype(np.float64), 3, axis=0)  # every row three times
    loo, sq = nearest(R, NeighbourIndex(R), k=2, skip_self=True)
    np.testing.assert_array_equal(loo, 0.0)
    np.testing.assert_array_equal(sq, 0.0)


def test_score_is_mean_distance_in_the_chosen_space():
    X = blobs(300, 4)
    X[:, 2] *= 1000.0  # a feature in much larger units
    Q = blobs(20, 4, seed=2)
    Q[:, 2] *= 1000.0
    for scaling in ("none", "standard"):
        det = KNN(k=5, scaling=scaling).fit(X)
        scale = X.astype(np.float64).std(axis=0) if scaling == "standard" else np.ones(4)
        nn = NearestNeighbors(n_neighbors=5).fit(X / scale)
        expected = nn.kneighbors(Q / scale)[0].mean(axis=1)
        np.testing.assert_allclose(det.score(Q), expected, rtol=1e-5)


def test_reference_scores_are_leave_one_out_scores_of_the_reference_rows():
    X = blobs(200, 5)
    det = KNN(k=3).fit(X)
    Z = det.reference_z_
    expected = np.array(
        [det._scores(Z[i : i + 1], skip_self=False)[0][0] for i in range(3)]
    )  # scoring a reference row normally finds itself at distance 0 ...
    assert np.all(expected < det.reference_scores_[:3])  # ... leave-one-out does not
    again = NearestNeighbors(n_neighbors=4).fit(Z).kneighbors(Z)[0][:, 1:].mean(axis=1)
    np.testing.assert_allclose(det.reference_scores_, again, rtol=1e-9)


def test_large_data_keeps_a_seeded_sample_of_reference_rows():
    X = blobs(1000, 3)
    a, b, c = (KNN(seed=s, max_reference=100).fit(X) for s in (0, 0, 1))
    assert a.reference_.shape == (100, 3)
    np.testing.assert_array_equal(a.reference_, b.reference_)
    assert not np.array_equal(a.reference_, c.reference_)
    assert {tuple(r) for r in a.reference_.tolist()} <= {tuple(r) for r in X.tolist()}
    assert a.reference_scores_.shape == (100,)


def test_tiny_training_set_uses_fewer_neighbours():
    det = KNN(k=5).fit(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32))
    assert det.k_ == 2
    assert np.all(np.isfinite(det.score(np.array([[5.0, 5.0]], np.float32))))


def test_perturbed_feature_gets_the_largest_contribution():
    X = blobs(400, 6)
    det = KNN(k=5).fit(X)
    row = X[:1].copy()
    row[0, 4] += 8 * X[:, 4].std()
    scores, contrib = det.score_and_explain(row)
    assert contrib is not None and int(np.argmax(contrib[0])) == 4
    assert np.all(contrib >= 0)
    assert scores[0] > np.quantile(det.reference_scores_, 0.99)


def test_non_finite_rows_get_nan_and_do_not_disturb_others():
    X = blobs(100, 3)
    det = KNN().fit(X)
    Q = X[:4].copy()
    Q[1, 0], Q[2, 2] = np.nan, np.inf
    scores, contrib = det.score_and_explain(Q)
    assert np.isnan(scores[[1, 2]]).all() and np.isnan(contrib[[1, 2]]).all()
    np.testing.assert_array_equal(scores[[0, 3]], det.score(Q[[0, 3]]))


def test_batch_independence_is_exact():
    X = blobs(600, 16)
    det = KNN().fit(X)
    Q = blobs(700, X.shape[1], seed=3)
    whole, contrib = det.score_and_explain(Q)
    alone = np.array([det.score(Q[i : i + 1])[0] for i in range(0, 700, 50)])
    np.testing.assert_array_equal(alone, whole[::50])
    perm = np.random.default_rng(0).permutation(700)
    s, c = det.score_and_explain(Q[perm])
    np.testing.assert_array_equal(s, whole[perm])
    np.testing.assert_array_equal(c, contrib[perm])


@pytest.mark.parametrize(
    "params", [{"k": 0}, {"max_reference": 1}, {"scaling": "minmax"}, {"k": "many"}]
)
def test_invalid_params_raise(params):
    with pytest.raises((DetectorError, ValueError)):
        KNN(**params)


def test_fit_refuses_bad_training_data():
    with pytest.raises(DetectorError, match="at least 2 rows"):
        KNN().fit(np.zeros((1, 3), np.float32))
    with pytest.raises(DetectorError, match="NaN"):
        KNN().fit(np.array([[0.0], [np.nan]], np.float32))
    with pytest.raises(DetectorError, match="not fitted"):
        KNN().score(np.zeros((1, 3), np.float32))


def test_load_refuses_a_reference_that_does_not_match_the_state(tmp_path: Path):
    det = KNN().fit(blobs(50, 3))
    det.save(tmp_path)
    params, state = json.loads(json.dumps(det.get_params())), det.get_state()
    with pytest.raises(DetectorError, match="reference rows"):
        KNN.load(tmp_path, params, {**state, "n_reference": 49})
    with pytest.raises(DetectorError, match="invalid detector state"):
        KNN.load(tmp_path, params, {k: v for k, v in state.items() if k != "scaler"})
    (tmp_path / REFERENCE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(DetectorError, match="cannot load"):
        KNN.load(tmp_path, params, state)
