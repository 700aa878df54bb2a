"""The drift tests' statistics against brute force and their distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tripwire.core.drift.statistics import (
    AlertRateBand,
    FeatureChi2,
    ScoreKS,
    bin_counts,
    ks_distance,
    psi,
)


def test_ks_distance_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=rng.integers(5, 300)), rng.normal(0.3, size=rng.integers(5, 300))
        b = np.round(b, 1)  # ties
        assert ks_distance(a, np.sort(b)) == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_bin_counts_match_searchsorted_with_tied_edges() -> None:
    rng = np.random.default_rng(1)
    X = np.round(rng.normal(size=(9000, 4)), 0)  # few distinct values: tied edges
    edges = np.sort(np.quantile(X, np.arange(1, 10) / 10, axis=0).T, axis=1)
    counts = bin_counts(X, edges)
    for j in range(4):
        want = np.bincount(np.searchsorted(edges[j], X[:, j], side="right"), minlength=10)
        np.testing.assert_array_equal(counts[j], want)
    assert counts.sum() == X.size


def test_alert_band_holds_its_rate_with_the_calibration_uncertainty() -> None:
    """Drawing calibration and window from one rate, the band is left at most alpha."""
    rng = np.random.default_rng(2)
    p, n_cal, n, alpha = 0.01, 2000, 1000, 0.05
    misses = 0
    trials = 2000
    cache: dict[int, AlertRateBand] = {}
    for _ in range(trials):
        k = int(rng.binomial(n_cal, p))
        band = cache.setdefault(k, AlertRateBand(n, k, n_cal, alpha))
        misses += band.alarm(int(rng.binomial(n, p)))
    assert misses <= stats.binom.ppf(0.999, trials, alpha)


def test_alert_band_widens_for_a_small_calibration_split() -> None:
    small, large = AlertRateBand(1000, 1, 100, 0.01), AlertRateBand(1000, 100, 10_000, 0.01)
    assert small.high > large.high
    assert AlertRateBand(1000, 10, 1000, 0.01, expected_anomaly_rate=0.04).low > large.high


def test_score_ks_false_alarm_rate() -> None:
    rng = np.random.default_rng(3)
    test = ScoreKS(np.sort(rng.exponential(size=3000)), alpha=0.05)
    alarms = sum(test.distance(rng.exponential(size=800)) > test.critical(800) for _ in range(600))
    assert alarms <= stats.binom.ppf(0.999, 600, 0.05)


def test_chi2_rate_accounts_for_the_estimated_bins() -> None:
    """Fresh reference each trial: the inflation keeps the family-wise rate at alpha."""
    rng = np.random.default_rng(4)
    d, n_ref, n, alpha, trials = 20, 3000, 2000, 0.1, 300
    alarms = 0
    for _ in range(trials):
        ref = rng.normal(size=(n_ref, d))
        edges = np.quantile(ref, np.arange(1, 10) / 10, axis=0).T
        test = FeatureChi2(bin_counts(ref, edges) / n_ref, n_ref, alpha)
        stat = test.statistic(bin_counts(rng.normal(size=(n, d)), edges))
        alarms += bool(np.any(stat > test.critical))
    assert alarms <= stats.binom.ppf(0.999, trials, alpha)


def test_chi2_skips_constant_features_and_detects_a_shift() -> None:
    probs = np.array([[0.0] * 9 + [1.0], [0.1] * 10])
    test = FeatureChi2(probs, 10_000, 0.01)
    assert test.dof.tolist() == [0, 9] and np.isinf(test.critical[0])
    shifted = np.array([[0] * 9 + [500], [10] * 5 + [90] * 5])
    stat = test.statistic(shifted)
    assert stat[0] == 0 and stat[1] > test.critical[1]
    assert test.p_values(stat)[0] == 1.0 and test.p_values(stat)[1] < 1e-6


def test_psi_is_zero_at_the_reference_and_grows_with_shift() -> None:
    probs = np.full((1, 10), 0.1)
    assert psi(np.full((1, 10), 100), probs)[0] == pytest.approx(0.0, abs=1e-4)
    assert psi(np.array([[300, 300] + [50] * 8]), probs)[0] > 0.25


def test_score_ks_thins_a_large_reference_within_its_resolution() -> None:
    rng = np.random.default_rng(5)
    ref = np.sort(rng.normal(size=50_000))
    window = rng.normal(0.05, size=3000)
    thinned = ScoreKS(ref, 0.01).distance(window)
    assert thinned == pytest.approx(ks_distance(window, ref), abs=2 / 4096)
    assert ScoreKS(ref, 0.01).critical(3000) < ScoreKS(ref[:5000], 0.01).critical(3000)
