from __future__ import annotations

import numpy as np
import pytest

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.ae import AutoEncoder, default_hidden_sizes

from .test_deep import low_rank


@pytest.mark.parametrize(("d", "sizes"), [(50, [25, 12]), (8, [4, 2]), (2, [4, 2]), (1, [4, 2])])
def test_default_hidden_sizes(d, sizes):
    assert default_hidden_sizes(d) == sizes


def test_contributions_are_squared_errors_that_average_to_the_score():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=10).fit(X)
    scores, contrib = det.score_and_explain(X[:20])
    assert contrib is not None
    np.testing.assert_allclose(contrib.mean(axis=1), scores, rtol=1e-5)
    Z = det.scaler_.transform(X[:20])
    import torch

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
    assert state["hidden_sizes"] == [4, 2]
    assert 1 <= state["best_epoch"] <= state["epochs_trained"] <= 2


def test_state_needs_a_fitted_model():
    with pytest.raises(DetectorError):
        AutoEncoder().get_state()
