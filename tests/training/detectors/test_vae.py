from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.vae import LOG_VAR_MAX, LOG_VAR_MIN, VAE, gaussian_nll_terms

from .test_deep import low_rank


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return low_rank(n=600)


@pytest.fixture(scope="module")
def vae(X) -> VAE:
    return VAE(seed=0, epochs=60, batch_size=64, latent_dim=2).fit(X)


def test_kl_term_is_in_the_loss_and_nonzero(vae, X):
    for h in vae.history_:
        assert h["loss"] == pytest.approx(h["nll"] + vae.beta * h["kl"], rel=1e-5)
    assert vae.history_[-1]["kl"] > 0.1
    assert vae.elbo_terms(X)["kl"] > 0.1


def test_beta_weights_the_kl_term(X):
    """With the KL term switched off the posterior drifts far from the prior."""
    with_kl = VAE(seed=0, epochs=60, batch_size=64, latent_dim=2, beta=1.0).fit(X)
    without = VAE(seed=0, epochs=60, batch_size=64, latent_dim=2, beta=0.0).fit(X)
    assert without.elbo_terms(X)["kl"] > 3 * with_kl.elbo_terms(X)["kl"]


def test_score_is_the_negative_log_mean_likelihood_minus_the_offset(vae, X):
    row = torch.from_numpy(vae.scaler_.transform(X[:1]))
    net = vae.module_
    with torch.no_grad():
        mu_z, log_var_z = net.encode(row)
        log_ps = []
        for eps in net.score_noise:
            mu_x, log_var_x = net.decode(mu_z + torch.exp(0.5 * log_var_z) * eps)
            log_ps.append(-float(gaussian_nll_terms(row, mu_x, log_var_x).sum()))
    expected = -math.log(np.mean(np.exp(np.array(log_ps, dtype=np.float64)))) - vae.score_offset_
    assert vae.score(X[:1])[0] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_scoring_is_deterministic_per_row_whatever_the_batch(vae, X):
    rng = np.random.default_rng(5)
    reference = vae.score(X)
    alone = np.array([vae.score(X[i : i + 1])[0] for i in range(0, len(X), 37)])
    np.testing.assert_allclose(alone, reference[::37], rtol=1e-6, atol=1e-6)
    perm = rng.permutation(len(X))
    shuffled = np.empty(len(X))
    shuffled[perm] = vae.score(X[perm])
    np.testing.assert_allclose(shuffled, reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(vae.score(X), reference)  # no hidden RNG state


def test_scores_on_training_rows_start_at_zero(vae, X):
    scores = vae.score(X)
    assert scores.min() == pytest.approx(0.0, abs=1e-4)
    assert np.median(scores) > 0


def test_scoring_noise_is_a_saved_buffer_of_the_configured_size(vae):
    assert tuple(vae.module_.score_noise.shape) == (4, 2)  # n_samples defaults to 4
    assert "score_noise" in vae.module_.state_dict()


def test_decoder_log_variance_is_clamped(vae):
    with torch.no_grad():
        _, log_var = vae.module_.decode(torch.full((3, 2), 1e3))
    assert float(log_var.min()) >= LOG_VAR_MIN and float(log_var.max()) <= LOG_VAR_MAX


def test_anomalous_rows_score_higher(vae, X):
    rng = np.random.default_rng(1)
    outliers = rng.uniform(-5, 5, size=(50, X.shape[1])).astype(np.float32) * X.std(axis=0)
    assert np.median(vae.score(outliers)) > np.quantile(vae.score(X), 0.99)


@pytest.mark.parametrize("params", [{"beta": -1.0}, {"n_samples": 0}, {"latent_dim": 0}])
def test_invalid_vae_parameters_raise(params):
    with pytest.raises(DetectorError):
        VAE(**params)


def test_load_needs_the_score_offset(vae, tmp_path):
    vae.save(tmp_path)
    state = vae.get_state()
    del state["score_offset"]
    with pytest.raises(DetectorError, match="invalid detector state"):
        VAE.load(tmp_path, vae.get_params(), state)


def test_the_kernels_exp_is_exp_to_far_below_float32_resolution():
    from tripwire.training.detectors.vae import exp_small

    for x in np.linspace(-8.0, 8.0, 4001):
        assert exp_small(x) == pytest.approx(math.exp(x), rel=1e-9)
