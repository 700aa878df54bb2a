from __future__ import annotations

import numpy as np
import pytest
import torch

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.ae import AutoEncoder, default_hidden_sizes

from .test_deep import low_rank


@pytest.mark.parametrize("d", [1, 8, 50, 300])
def test_default_hidden_sizes(d):
    assert default_hidden_sizes(d) == [64, 32]


def test_contributions_are_squared_errors_that_average_to_the_score():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=10).fit(X)
    scores, contrib = det.score_and_explain(X[:20])
    assert contrib is not None
    np.testing.assert_allclose(contrib.mean(axis=1), scores, rtol=1e-5)
    Z = det.scaler_.transform(X[:20])
    with torch.no_grad():
        recon = det.module_(torch.from_numpy(Z)).numpy()
    np.testing.assert_allclose(contrib, (recon - Z) ** 2, rtol=1e-4, atol=1e-7)


def test_the_perturbed_feature_gets_the_largest_contribution():
    X = low_rank(n=600)
    det = AutoEncoder(seed=0, epochs=100, batch_size=64).fit(X)
    row = X[:1].copy()
    row[0, 5] += 6 * X[:, 5].std()
    _, contrib = det.score_and_explain(row)
    assert contrib is not None and int(np.argmax(contrib[0])) == 5
    assert det.score(row)[0] > np.quantile(det.score(X), 0.99)


def test_state_records_the_scaler_and_architecture():
    det = AutoEncoder(seed=0, epochs=2).fit(low_rank())
    state = det.get_state()
    assert state["n_features"] == 8
    assert len(state["scaler"]["mean"]) == len(state["scaler"]["scale"]) == 8
    assert state["hidden_sizes"] == [64, 32]
    assert det.get_params()["batch_norm"] is True
    assert 1 <= state["best_epoch"] <= state["epochs_trained"] <= 2


def test_state_needs_a_fitted_model():
    with pytest.raises(DetectorError):
        AutoEncoder().get_state()


def test_a_model_saved_before_batch_norm_and_the_new_sizes_still_loads(tmp_path):
    """Such a manifest has no ``batch_norm`` and ``hidden_sizes: null``; its weights
    are those of the linear-code network with the sizes recorded in its state."""
    X = low_rank()
    old = AutoEncoder(seed=0, epochs=3, batch_norm=False, hidden_sizes=[4, 2]).fit(X)
    old.save(tmp_path)
    params = {k: v for k, v in old.get_params().items() if k != "batch_norm"}
    params["hidden_sizes"] = None
    loaded = AutoEncoder.load(tmp_path, params, old.get_state())
    assert not loaded.batch_norm and loaded.get_state()["hidden_sizes"] == [4, 2]
    assert np.array_equal(loaded.score(X), old.score(X))


def test_batch_norm_is_folded_for_scoring_and_scores_like_the_module():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=5).fit(X)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in det.module_.modules())
    Z = det.scaler_.transform(X)
    with torch.no_grad():
        expected = ((det.module_(torch.from_numpy(Z)) - torch.from_numpy(Z)) ** 2).mean(1)
    np.testing.assert_allclose(det.score(X), expected.numpy(), rtol=2e-5, atol=1e-6)
