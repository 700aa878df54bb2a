"""``ensemble``: kNN members in several spaces, combined by mean surprise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tripwire.core.errors import DetectorError
from tripwire.training.detectors import make_detector
from tripwire.training.detectors.ensemble import ENSEMBLE_FILE, KNNEnsemble, parse_scalings
from tripwire.training.detectors.knn import KNN
from tripwire.training.detectors.surprise import Surprise


def mixed_units(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal rows in two clusters; feature 0 is loud noise in large units.

    Anomalies sit between the clusters in the small-unit features, so distances
    in raw units (dominated by feature 0) barely see them, while standardised
    distances do.
    """
    rng = np.random.default_rng(seed)

    def normal(n: int) -> np.ndarray:
        small = rng.choice([-1.0, 1.0], size=(n, 1)) + 0.1 * rng.normal(size=(n, 3))
        return np.hstack([1000 * rng.normal(size=(n, 1)), small])

    anomalies = np.hstack([1000 * rng.normal(size=(50, 1)), 0.1 * rng.normal(size=(50, 3))])
    X_test = np.vstack([normal(300), anomalies]).astype(np.float32)
    y_test = np.r_[np.zeros(300), np.ones(50)]
    return normal(600).astype(np.float32), X_test, y_test


def test_score_is_the_mean_surprise_of_the_members():
    X, X_test, _ = mixed_units()
    det = KNNEnsemble(seed=1).fit(X)
    by_hand = []
    for scaling in ("none", "standard"):
        member = KNN(seed=1, scaling=scaling).fit(X)
        by_hand.append(Surprise().fit(member.reference_scores_).transform(member.score(X_test)))
    np.testing.assert_allclose(det.score(X_test), np.mean(by_hand, axis=0), rtol=1e-12)


def test_members_are_normalised_on_their_own_leave_one_out_scores():
    X, _, _ = mixed_units()
    det = KNNEnsemble().fit(X)
    for member, surprise in zip(det.members_, det.surprise_, strict=True):
        # a leave-one-out score's surprise is its conformal p-value among the others
        ref = member.reference_scores_
        out = surprise.transform(ref)
        at_least = (ref[None, :] >= ref[:, None]).sum(axis=1)
        np.testing.assert_allclose(out, np.log((len(ref) + 1) / (at_least + 1)), rtol=1e-12)


def test_standardised_member_rescues_features_drowned_in_large_units():
    X, X_test, y_test = mixed_units()
    raw = KNN(scaling="none").fit(X).score(X_test)
    both = KNNEnsemble().fit(X).score(X_test)
    assert roc_auc_score(y_test, raw) < 0.75
    assert roc_auc_score(y_test, both) > 0.95


def test_contributions_come_from_the_standardised_member():
    X, X_test, _ = mixed_units()
    det = KNNEnsemble().fit(X)
    _, contrib = det.score_and_explain(X_test)
    _, expected = det.members_[1].score_and_explain(X_test)
    np.testing.assert_array_equal(contrib, expected)
    only_raw = KNNEnsemble(scalings="none").fit(X)
    np.testing.assert_array_equal(
        only_raw.score_and_explain(X_test)[1], only_raw.members_[0].score_and_explain(X_test)[1]
    )


def test_members_share_one_seeded_reference_sample():
    X, _, _ = mixed_units()
    det = KNNEnsemble(seed=4, max_reference=100).fit(X)
    a, b = det.members_
    assert a.reference_.shape == (100, 4)
    np.testing.assert_array_equal(a.reference_, b.reference_)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none,standard", ("none", "standard")),
        (" standard ", ("standard",)),
        (["standard", "none"], ("standard", "none")),
    ],
)
def test_scalings_parse(value, expected):
    assert parse_scalings(value) == expected


@pytest.mark.parametrize("value", ["", "none,none", "minmax", ["none", "robust"]])
def test_bad_scalings_raise(value):
    with pytest.raises(DetectorError, match="scalings"):
        make_detector("ensemble", scalings=value)


def test_make_detector_passes_params_and_rejects_unknown_ones():
    det = make_detector("ensemble", seed=2, k=3, scalings="standard")
    assert det.get_params() == {
        "seed": 2, "k": 3, "scalings": ["standard"], "max_reference": 2_000,
        "reference": "sparse", "scale_k": True,
    }  # fmt: skip
    with pytest.raises(DetectorError, match="unknown parameter"):
        make_detector("ensemble", epochs=3)


def test_nan_rows_score_nan():
    X, X_test, _ = mixed_units()
    det = KNNEnsemble().fit(X)
    Q = X_test[:3].copy()
    Q[1, 2] = np.nan
    scores = det.score(Q)
    assert np.isnan(scores[1]) and np.all(np.isfinite(scores[[0, 2]]))


def test_load_refuses_inconsistent_files_and_state(tmp_path: Path):
    X, _, _ = mixed_units()
    det = KNNEnsemble().fit(X)
    det.save(tmp_path)
    params, state = json.loads(json.dumps(det.get_params())), det.get_state()
    with pytest.raises(DetectorError, match="scalers"):
        KNNEnsemble.load(tmp_path, params, {**state, "scalers": state["scalers"][:1]})
    with pytest.raises(DetectorError, match="invalid detector state"):
        KNNEnsemble.load(tmp_path, params, {"scalers": state["scalers"]})
    with pytest.raises(DetectorError, match="invalid parameters"):
        KNNEnsemble.load(tmp_path, {**params, "depth": 3}, state)
    (tmp_path / ENSEMBLE_FILE).unlink()
    with pytest.raises(DetectorError, match="cannot load"):
        KNNEnsemble.load(tmp_path, params, state)


def test_a_model_saved_before_reference_and_scale_k_loads_as_it_was_fitted(tmp_path):
    X = np.random.default_rng(3).normal(size=(400, 4)).astype("float32")
    old = KNNEnsemble(max_reference=300, reference="uniform", scale_k=False).fit(X)
    old.save(tmp_path)
    params = {"seed": 0, "k": 5, "scalings": ["none", "standard"], "max_reference": 300}
    state = old.get_state()
    state.pop("k", None)  # older manifests had no effective k either
    back = KNNEnsemble.load(tmp_path, params, state)
    assert back.get_params()["reference"] == "uniform" and back.get_params()["scale_k"] is False
    assert np.array_equal(back.score(X), old.score(X))
