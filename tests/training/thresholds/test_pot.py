"""Peaks-over-threshold against distributions whose tail quantiles are known."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats

from tripwire.training.thresholds import CalibrationData, PotThreshold
from tripwire.training.thresholds.pot import fit_gpd, gpd_loglik, pot_quantile

SEEDS = range(5)


def _rel_err(estimate: float, truth: float) -> float:
    return abs(estimate - truth) / abs(truth)


def test_pot_estimates_exponential_tail_quantile_within_a_few_percent() -> None:
    q, truth = 1e-3, -np.log(1e-3)  # exponential(1): P(X > x) = exp(-x)
    errors = []
    for seed in SEEDS:
        x = np.random.default_rng(seed).exponential(size=20000)
        value, details = pot_quantile(x, q)
        assert details["fallback"] is None and details["n_peaks"] == 400
        errors.append(_rel_err(value, truth))
    assert np.mean(errors) < 0.03
    assert max(errors) < 0.06


@pytest.mark.parametrize(
    ("name", "sample", "truth"),
    [
        ("exponential", lambda rng, n: rng.exponential(size=n), -np.log(1e-5)),
        ("student-t(3)", lambda rng, n: rng.standard_t(3, size=n), stats.t.ppf(1 - 1e-5, 3)),
        ("pareto(2)", lambda rng, n: rng.pareto(2.0, size=n) + 1.0, (1e-5) ** (-1 / 2.0)),
    ],
)
def test_pot_beats_empirical_quantile_far_in_the_tail(name, sample, truth) -> None:
    """q = 1e-5 on 20k samples: the empirical quantile is just the sample maximum."""
    q = 1e-5
    pot_err, emp_err = [], []
    for seed in SEEDS:
        x = sample(np.random.default_rng(seed), 20000)
        pot_err.append(_rel_err(pot_quantile(x, q)[0], truth))
        emp_err.append(_rel_err(float(np.quantile(x, 1 - q, method="higher")), truth))
    assert np.mean(pot_err) < np.mean(emp_err), (name, pot_err, emp_err)


@pytest.mark.parametrize("shape", [-0.3, 0.0, 0.2, 0.5])
def test_grimshaw_fit_matches_scipy_maximum_likelihood(shape: float) -> None:
    rng = np.random.default_rng(7)
    y = stats.genpareto.rvs(shape, scale=2.0, size=2000, random_state=rng)
    gamma, sigma = fit_gpd(y)
    assert gamma == pytest.approx(shape, abs=0.08)
    assert sigma == pytest.approx(2.0, rel=0.1)
    c, _, scale = stats.genpareto.fit(y, floc=0)
    # Ours is a maximum of the likelihood at least as good as scipy's optimiser finds.
    assert gpd_loglik(y, gamma, sigma) >= gpd_loglik(y, float(c), float(scale)) - 1e-6


def test_too_few_peaks_falls_back_to_empirical_quantile_with_warning(caplog) -> None:
    x = np.random.default_rng(0).exponential(size=200)  # 2% of 200 = 4 peaks
    with caplog.at_level(logging.WARNING, logger="tripwire.training.thresholds.pot"):
        t = PotThreshold(q=1e-2).fit(CalibrationData(np.zeros(1), x))
    assert t.details_["fallback"] and "peaks" in t.details_["fallback"]
    assert t.value == float(np.quantile(x, 0.99, method="higher"))
    assert "empirical" in caplog.text


def test_zero_variance_tail_falls_back() -> None:
    x = np.r_[np.zeros(9000), np.ones(1000)]  # every peak above t is exactly 1
    t = PotThreshold(q=1e-4, level=0.85).fit(CalibrationData(np.zeros(1), x))
    assert "zero variance" in t.details_["fallback"]
    assert np.isfinite(t.value)


def test_risk_not_beyond_initial_level_uses_empirical_quantile() -> None:
    x = np.random.default_rng(3).normal(size=5000)
    value, details = pot_quantile(x, q=0.1, level=0.98)
    assert "not beyond" in details["fallback"]
    assert value == float(np.quantile(x, 0.9, method="higher"))


def test_uniform_tail_takes_the_bounded_boundary_fit() -> None:
    x = np.random.default_rng(4).uniform(size=20000)  # excesses uniform: GPD shape -1
    value, details = pot_quantile(x, q=1e-4)
    assert details["fallback"] is None and details["gamma"] == -1.0
    assert 0.999 < value <= x.max()


def test_short_tail_with_negative_shape() -> None:
    """P(X > 1 - e) = e**3: shape -1/3, upper end point 1."""
    q = 1e-4
    truth = 1 - q ** (1 / 3)
    errors = []
    for seed in SEEDS:
        x = 1 - np.random.default_rng(seed).uniform(size=20000) ** (1 / 3)
        value, details = pot_quantile(x, q)
        assert details["gamma"] < 0 and value < 1.0
        errors.append(_rel_err(value, truth))
    assert np.mean(errors) < 0.03
