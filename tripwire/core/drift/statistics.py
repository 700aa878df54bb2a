"""The three drift tests, each with an analytic per-window false-alarm bound.

Every test here is built once per window size from the reference and then
answers "does this window differ from the reference?" with a false-alarm
probability of at most its ``alpha`` on a stationary stream:

* :class:`AlertRateBand`: the count of alerts in a window of ``n`` events against
  the rate the threshold was calibrated for. The band is the Beta-binomial
  predictive distribution: binomial in the window, with the calibrated rate
  itself uncertain (Jeffreys posterior from the calibration split), so a small
  calibration split widens the band instead of raising false alarms.
* :class:`ScoreKS`: the two-sample Kolmogorov-Smirnov distance between the
  window's scores and the calibration scores, against the asymptotic critical
  value ``K^-1(alpha) * sqrt((n + N) / (n N))``.
* :class:`FeatureChi2`: per feature, Pearson's chi-square of the window's counts in
  the reference's quantile bins, inflated by ``1 + n / N`` because the bins and
  their probabilities were estimated from ``N`` training rows; critical values
  at ``alpha / d`` (Bonferroni across the ``d`` features, valid whatever their
  correlation).

All statistics are vectorised over the window (pure numpy; scipy's special
functions only build the critical values).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special, stats

#: Points of the Jeffreys posterior the Beta-binomial band averages over.
_RATE_GRID = 256
#: Calibration scores the KS distance is computed against (a thinned ECDF beyond).
_KS_POINTS = 4096


@dataclass(frozen=True)
class AlertRateBand:
    """Two-sided band for the alert count of a window of ``n`` events.

    Parameters
    ----------
    n : int
        Events in the window.
    calibration_alerts, calibration_rows : int
        Calibration scores above the threshold, and how many there were.
    alpha : float
        False-alarm probability of one window (split evenly between the tails).
    expected_anomaly_rate : float
        Share of events expected to be true anomalies (all assumed to alert); the
        band is centred on ``a + (1 - a) * calibrated rate``.

    >>> band = AlertRateBand(1000, 10, 1000, 0.01)
    >>> band.low <= 10 <= band.high
    True
    """

    n: int
    calibration_alerts: int
    calibration_rows: int
    alpha: float
    expected_anomaly_rate: float = 0.0

    @cached_property
    def _cdf(self) -> np.ndarray:
        k, m = self.calibration_alerts, self.calibration_rows
        levels = (np.arange(_RATE_GRID) + 0.5) / _RATE_GRID
        q = stats.beta.ppf(levels, k + 0.5, m - k + 0.5)
        a = self.expected_anomaly_rate
        p = a + (1.0 - a) * q
        pmf = stats.binom.pmf(np.arange(self.n + 1)[None, :], self.n, p[:, None]).mean(axis=0)
        return np.cumsum(pmf)

    @cached_property
    def low(self) -> int:
        """Smallest in-band count: ``P(K < low) <= alpha / 2``."""
        return int(np.searchsorted(self._cdf, self.alpha / 2, side="right"))

    @cached_property
    def high(self) -> int:
        """Largest in-band count: ``P(K > high) <= alpha / 2``."""
        return int(np.searchsorted(self._cdf, 1.0 - self.alpha / 2, side="left"))

    @property
    def expected(self) -> float:
        """The band's centre as a rate."""
        k, m, a = self.calibration_alerts, self.calibration_rows, self.expected_anomaly_rate
        return a + (1.0 - a) * (k + 0.5) / (m + 1.0)

    def alarm(self, count: int) -> bool:
        return count < self.low or count > self.high


def ks_distance(window: np.ndarray, reference_sorted: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup |F_window - F_reference|``.

    Parameters
    ----------
    window : ndarray (n,)
    reference_sorted : ndarray (N,), sorted ascending
    """
    w = np.sort(window)
    points = np.concatenate([w, reference_sorted])
    f_w = np.searchsorted(w, points, side="right") / len(w)
    f_r = np.searchsorted(reference_sorted, points, side="right") / len(reference_sorted)
    return float(np.max(np.abs(f_w - f_r)))


@dataclass(frozen=True)
class ScoreKS:
    """KS test of the window's scores against ``N`` calibration scores.

    >>> rng = np.random.default_rng(0)
    >>> test = ScoreKS(np.sort(rng.normal(size=2000)), alpha=0.01)
    >>> bool(test.distance(rng.normal(size=500)) < test.critical(500))
    True
    >>> bool(test.distance(rng.normal(1.0, size=500)) > test.critical(500))
    True
    """

    reference_sorted: np.ndarray
    alpha: float

    def critical(self, n: int) -> float:
        big_n = len(self.reference_sorted)
        return float(special.kolmogi(self.alpha)) * float(np.sqrt((n + big_n) / (n * big_n)))

    @cached_property
    def _ecdf_points(self) -> np.ndarray:
        """At most ``_KS_POINTS`` evenly spaced order statistics (ECDF error below 1/that)."""
        ref = self.reference_sorted
        if len(ref) <= _KS_POINTS:
            return ref
        return ref[np.linspace(0, len(ref) - 1, _KS_POINTS).round().astype(np.intp)]

    def distance(self, window: np.ndarray) -> float:
        return ks_distance(window, self._ecdf_points)

    def p_value(self, distance: float, n: int) -> float:
        """Asymptotic p-value of ``distance`` for a window of ``n``."""
        big_n = len(self.reference_sorted)
        return float(special.kolmogorov(distance * np.sqrt(n * big_n / (n + big_n))))


def bin_index(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value's bin in its feature's quantile bins.

    Bin ``b`` of feature ``j`` holds the values with exactly ``b`` of its edges
    ``<=`` them (``searchsorted(..., side="right")``), so tied edges make empty bins.

    Parameters
    ----------
    X : ndarray (n, d)
    edges : ndarray (d, B - 1), each row sorted, ``B <= 256``

    Returns
    -------
    ndarray (n, d) of uint8
    """
    out = np.zeros(X.shape, np.uint8)
    for k in range(edges.shape[1]):  # one (n, d) comparison per edge: no (n, d, B) temporary
        out += X >= edges[:, k]
    return out


def tally(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts per feature and bin of :func:`bin_index` output (n, d); shape (d, B)."""
    d = bins.shape[1]
    flat = bins.astype(np.intp) + (np.arange(d) * n_bins)[None, :]
    return np.bincount(flat.ravel(), minlength=d * n_bins).reshape(d, n_bins)


def bin_counts(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of each feature's values (n, d) in its bins (:func:`bin_index`); (d, B)."""
    return tally(bin_index(X, edges), edges.shape[1] + 1)


@dataclass(frozen=True)
class FeatureChi2:
    """Per-feature chi-square tests against the reference's quantile bins.

    Parameters
    ----------
    probs : ndarray (d, B)
        Share of the ``reference_rows`` training rows in each bin (zero for the
        empty bins of tied edges, which are left out of the test).
    reference_rows : int
        ``N``, the rows the bins were estimated from.
    alpha : float
        False-alarm probability of one window over all features together.
    """

    probs: np.ndarray
    reference_rows: int
    alpha: float

    @cached_property
    def dof(self) -> np.ndarray:
        """Degrees of freedom per feature (0: constant in training, not tested)."""
        return np.maximum((self.probs > 0).sum(axis=1) - 1, 0)

    @cached_property
    def critical(self) -> np.ndarray:
        """Per-feature critical values at ``alpha / d``; ``inf`` for untested features."""
        tested = self.dof > 0
        level = self.alpha / max(1, int(tested.sum()))
        crit = np.full(len(self.dof), np.inf)
        crit[tested] = stats.chi2.isf(level, self.dof[tested])
        return crit

    def statistic(self, counts: np.ndarray) -> np.ndarray:
        """Chi-square per feature of window counts (d, B); shape (d,)."""
        n = counts.sum(axis=1, keepdims=True)
        expected = n * self.probs
        live = self.probs > 0
        inflation = 1.0 + n / self.reference_rows
        terms = np.where(live, (counts - expected) ** 2 / np.where(live, expected, 1.0), 0.0)
        stat = terms.sum(axis=1) / inflation[:, 0]
        return np.where(self.dof > 0, stat, 0.0)

    def p_values(self, statistic: np.ndarray) -> np.ndarray:
        """Per-feature p-values (1 for untested features), shape (d,)."""
        dof = np.maximum(self.dof, 1)
        return np.where(self.dof > 0, special.chdtrc(dof, statistic), 1.0)


def psi(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Population stability index per feature, an effect size (not a test).

    Window shares are smoothed by half a count per bin so empty bins stay finite.
    """
    n = counts.sum(axis=1, keepdims=True)
    live = probs > 0
    q = (counts + 0.5 * live) / (n + 0.5 * live.sum(axis=1, keepdims=True))
    p = np.where(live, probs, 1.0)
    return np.where(live, (q - p) * np.log(np.where(live, q, 1.0) / p), 0.0).sum(axis=1)


__all__ = [
    "AlertRateBand",
    "FeatureChi2",
    "ScoreKS",
    "bin_counts",
    "bin_index",
    "ks_distance",
    "psi",
    "tally",
]
