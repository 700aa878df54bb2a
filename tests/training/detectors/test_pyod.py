from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyod.models.ecod import ECOD
from pyod.models.iforest import IForest
from pyod.utils.data import generate_data

from tripwire.core.errors import DetectorError
from tripwire.training.detectors import detector_class, make_detector
from tripwire.training.detectors.pyod import (
    MODEL_FILE,
    ScoringMode,
    _probe_mode,
    find_pyod_model,
    pyod_class,
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X_train, X_test, y_train, _ = generate_data(
        n_train=300, n_test=100, n_features=5, contamination=0.1, random_state=3
    )
    return X_train[y_train == 0], X_test


@pytest.mark.parametrize("name", ["ECOD", "COPOD"])
def test_ecdf_models_score_each_row_exactly_as_pyod_scores_it_alone(name, data):
    X_train, X_test = data
    det = make_detector(f"pyod:{name}").fit(X_train)
    assert det.get_state()["scoring"] == "ecdf"
    scores, contrib = det.score_and_explain(X_test)
    pyod_alone = np.array([det.model_.decision_function(r[None])[0] for r in X_test])
    np.testing.assert_allclose(scores, pyod_alone, rtol=1e-10)
    # contributions are PyOD's per-feature tail terms and add up to the score
    assert contrib is not None
    np.testing.assert_allclose(contrib.sum(axis=1), scores, rtol=1e-12)


def test_pyod_ecod_itself_is_batch_dependent(data):
    """Why the ECDF path exists: PyOD scores a row differently inside a batch."""
    X_train, X_test = data
    model = ECOD().fit(X_train)
    alone = np.array([model.decision_function(r[None])[0] for r in X_test])
    assert not np.allclose(model.decision_function(X_test), alone, rtol=1e-3)


def test_probe_classifies_scoring_modes(data):
    X_train, _ = data
    assert _probe_mode(IForest(random_state=0).fit(X_train), X_train, 0) == "batch"
    assert _probe_mode(ECOD().fit(X_train), X_train, 0) == "rowwise"

    class Noisy:  # a model whose scores are not reproducible at all
        rng = np.random.default_rng(0)

        def decision_function(self, X):
            return self.rng.normal(size=len(X))

    assert _probe_mode(Noisy(), X_train, 0) == "batch-dependent"


def test_batch_dependent_model_is_flagged_and_survives_reload(data, tmp_path: Path):
    X_train, X_test = data
    det = make_detector("pyod:KNN").fit(X_train)
    det._set_mode("rowwise")
    np.testing.assert_array_equal(
        det.score(X_test), [det.model_.decision_function(r[None])[0] for r in X_test]
    )
    det._set_mode("batch-dependent")
    assert det.batch_independent is False
    assert type(det).batch_independent is False and det.kind == "pyod:KNN"
    assert detector_class("pyod:KNN").batch_independent is True  # the class is untouched
    det.save(tmp_path)
    loaded = detector_class(det.kind).load(tmp_path, det.get_params(), det.get_state())
    assert type(loaded).batch_independent is False
    np.testing.assert_array_equal(loaded.score(X_test), det.score(X_test))


def test_the_scoring_mode_is_saved_by_its_value_and_read_back(data, tmp_path: Path):
    assert [m.value for m in ScoringMode] == ["ecdf", "batch", "rowwise", "batch-dependent"]
    X_train, X_test = data
    det = make_detector("pyod:IForest", n_estimators=20).fit(X_train)
    det.save(tmp_path)
    state = json.loads(json.dumps(det.get_state()))
    assert state["scoring"] == "batch" and det.scoring_ is ScoringMode.BATCH
    loaded = detector_class(det.kind).load(tmp_path, det.get_params(), state)
    assert loaded.scoring_ is ScoringMode.BATCH
    with pytest.raises(DetectorError, match="unknown scoring mode 'batched'"):
        detector_class(det.kind).load(tmp_path, det.get_params(), {**state, "scoring": "batched"})


def test_seed_becomes_random_state_unless_given(data):
    X_train, _ = data
    assert make_detector("pyod:IForest", seed=7).fit(X_train).model_.random_state == 7
    det = make_detector("pyod:IForest", seed=7, random_state=1).fit(X_train)
    assert det.model_.random_state == 1


def test_kind_and_params_are_recorded(data):
    det = make_detector("pyod:IForest", seed=2, n_estimators=20)
    assert det.kind == "pyod:IForest"
    assert det.get_params() == {"seed": 2, "n_estimators": 20}
    assert pyod_class("IForest") is detector_class("pyod:IForest")


def test_unknown_pyod_names_and_params_raise():
    with pytest.raises(DetectorError, match="unknown PyOD model 'NoSuchDetector'"):
        make_detector("pyod:NoSuchDetector")
    with pytest.raises(DetectorError, match="invalid PyOD model name"):
        make_detector("pyod:../os")
    with pytest.raises(DetectorError, match="abstract"):
        find_pyod_model("BaseDetector")
    with pytest.raises(DetectorError, match="not a PyOD detector"):
        find_pyod_model("SCORE_MODEL")  # a torch module in pyod/models/lunar.py
    with pytest.raises(DetectorError, match="unknown parameter"):
        make_detector("pyod:IForest", n_trees=10)
    with pytest.raises(DetectorError, match="JSON"):
        make_detector("pyod:IForest", max_samples=object())


def test_fit_failures_become_detector_errors(data):
    X_train, _ = data
    with pytest.raises(DetectorError, match="fit failed"):
        make_detector("pyod:KNN", n_neighbors=10_000).fit(X_train)
    with pytest.raises(DetectorError):
        make_detector("pyod:IForest").fit(np.array([[np.nan, 1.0], [1.0, 2.0]]))


def test_scoring_checks_width_and_fit(data):
    X_train, X_test = data
    with pytest.raises(DetectorError, match="not fitted"):
        make_detector("pyod:KNN").score(X_test)
    det = make_detector("pyod:KNN").fit(X_train)
    with pytest.raises(DetectorError, match=r"\(n, 5\)"):
        det.score(X_test[:, :3])


def test_load_rejects_a_pickle_of_the_wrong_model(data, tmp_path: Path):
    X_train, _ = data
    knn = make_detector("pyod:KNN").fit(X_train)
    knn.save(tmp_path)
    state = json.loads(json.dumps(knn.get_state()))
    with pytest.raises(DetectorError, match="holds a KNN"):
        detector_class("pyod:IForest").load(tmp_path, {"seed": 0}, state)
    (tmp_path / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(DetectorError, match="cannot load"):
        detector_class("pyod:KNN").load(tmp_path, {"seed": 0}, state)


def test_pyod_deep_models_do_not_reseed_the_global_rngs(data):
    """PyOD's deep detectors call np.random.seed / torch.manual_seed in fit."""
    import random

    import torch

    X_train, X_test = data
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state())
    det = make_detector("pyod:AutoEncoder", epoch_num=2, verbose=0).fit(X_train)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.random.get_rng_state(), before[2])
    assert det.get_state()["scoring"] == "batch"
    assert np.all(np.isfinite(det.score(X_test)))
