"""The detector contract, run over every detector kind on seeded synthetic data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pyod.utils.data import generate_data
from sklearn.metrics import roc_auc_score

from tripwire.core import kinds
from tripwire.core.errors import DetectorError
from tripwire.training.detectors import Detector, detector_class, make_detector

#: Every registered kind, families as their examples: the registry decides what runs.
KINDS = kinds.examples()
# Small budgets (kinds not named here run with their defaults): the point is the
# contract, not the best model.
BUDGETS: dict[str, dict[str, Any]] = {
    "ensemble": {"max_reference": 300},  # < the 540 training rows: the seed picks them
    "knn": {"max_reference": 300},
    "ae": {"epochs": 30, "batch_size": 64},
    "vae": {"epochs": 30, "batch_size": 64},
    "pyod:IForest": {"n_estimators": 50},
}
SPECS: dict[str, dict[str, Any]] = {kind: BUDGETS.get(kind, {}) for kind in KINDS}
# kinds whose fit does not use the seed (every other kind must)
DETERMINISTIC = {"pyod:ECOD", "pyod:COPOD", "pyod:KNN", "pyod:HBOS"}
STOCHASTIC = [kind for kind in KINDS if kind not in DETERMINISTIC]


def test_the_lists_here_name_only_registered_kinds() -> None:
    assert set(BUDGETS) <= set(KINDS) and DETERMINISTIC <= set(KINDS)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X_train, X_test, y_train, y_test = generate_data(
        n_train=600, n_test=300, n_features=8, contamination=0.1, random_state=7
    )
    return {
        "normal": X_train[y_train == 0].astype(np.float32),
        "X_test": X_test.astype(np.float32),
        "y_test": y_test.astype(int),
    }


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> dict[str, Detector]:
    return {spec: make_detector(spec, seed=3, **p).fit(data["normal"]) for spec, p in SPECS.items()}


@pytest.fixture(params=list(SPECS))
def spec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_unfitted_detector_says_so(spec, data, tmp_path: Path):
    det = make_detector(spec, seed=3, **SPECS[spec])
    calls = [lambda: det.score(data["X_test"]), det.get_state, lambda: det.save(tmp_path)]
    for call in calls:
        with pytest.raises(DetectorError, match=rf"^{det.kind}: detector is not fitted$"):
            call()
    assert not list(tmp_path.iterdir())


def test_scores_are_finite_with_one_per_row(spec, fitted, data):
    scores, contrib = fitted[spec].score_and_explain(data["X_test"])
    assert scores.shape == (len(data["X_test"]),)
    assert scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    if contrib is not None:
        assert contrib.shape == data["X_test"].shape
        assert np.all(np.isfinite(contrib))
        assert np.all(contrib >= 0)
    assert np.array_equal(fitted[spec].score(data["X_test"]), scores)


def test_save_load_round_trip_gives_identical_scores(spec, fitted, data, tmp_path: Path):
    det = fitted[spec]
    files = det.save(tmp_path)
    assert files and all((tmp_path / f).is_file() for f in files)
    # params and state travel through the JSON manifest
    params = json.loads(json.dumps(det.get_params()))
    state = json.loads(json.dumps(det.get_state()))
    loaded = detector_class(det.kind).load(tmp_path, params, state)
    assert loaded.kind == det.kind
    s1, c1 = det.score_and_explain(data["X_test"])
    s2, c2 = loaded.score_and_explain(data["X_test"])
    np.testing.assert_array_equal(s2, s1)
    if c1 is None:
        assert c2 is None
    else:
        np.testing.assert_array_equal(c2, c1)
    assert loaded.batch_independent == det.batch_independent


def test_same_seed_gives_same_scores(spec, fitted, data):
    again = make_detector(spec, seed=3, **SPECS[spec]).fit(data["normal"])
    np.testing.assert_array_equal(again.score(data["X_test"]), fitted[spec].score(data["X_test"]))


@pytest.mark.parametrize("spec", STOCHASTIC)
def test_seed_is_used(spec, fitted, data):
    other = make_detector(spec, seed=4, **SPECS[spec]).fit(data["normal"])
    assert not np.array_equal(other.score(data["X_test"]), fitted[spec].score(data["X_test"]))


def test_score_of_a_row_does_not_depend_on_its_batch(spec, fitted, data):
    det = fitted[spec]
    assert det.batch_independent
    X = data["X_test"]
    reference = det.score(X)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X), size=12, replace=False)
    alone = np.array([det.score(X[i : i + 1])[0] for i in rows])
    # the same rows shuffled into a batch larger than a scoring chunk, with repeats
    big = np.concatenate([X, X, X[rows]])
    perm = rng.permutation(len(big))
    in_batch = np.empty(len(big))
    in_batch[perm] = det.score(big[perm])
    atol = 1e-6 * float(np.max(np.abs(reference)))
    np.testing.assert_allclose(alone, reference[rows], rtol=1e-6, atol=atol)
    np.testing.assert_allclose(in_batch[: len(X)], reference, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(in_batch[2 * len(X) :], reference[rows], rtol=1e-6, atol=atol)


def test_quality_floor_on_separable_data(spec, fitted, data):
    auc = roc_auc_score(data["y_test"], fitted[spec].score(data["X_test"]))
    assert auc > 0.9


def test_params_and_state_are_small_json(spec, fitted):
    det = fitted[spec]
    text = json.dumps({"params": det.get_params(), "state": det.get_state()})
    assert len(text) < 10_000
    assert det.get_params()["seed"] == 3


def test_fit_leaves_global_rngs_alone(spec, data):
    np.random.seed(123)
    torch.manual_seed(123)
    np_before = np.random.get_state()[1].copy()
    torch_before = torch.random.get_rng_state().clone()
    params = {**SPECS[spec], "epochs": 2} if spec in ("ae", "vae") else SPECS[spec]
    make_detector(spec, seed=0, **params).fit(data["normal"])
    assert np.array_equal(np.random.get_state()[1], np_before)
    assert torch.equal(torch.random.get_rng_state(), torch_before)
