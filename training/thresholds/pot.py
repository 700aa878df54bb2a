"""``pot:<q>[,<level>]``: Peaks-Over-Threshold extreme value calibration.

Siffer, Fouque, Termier and Largouët, "Anomaly Detection in Streams with Extreme
Value Theory", KDD 2017. By the Pickands-Balkema-de Haan theorem, the excesses
of scores over a high initial threshold ``t`` follow a generalised Pareto
distribution (GPD) with shape ``gamma`` and scale ``sigma``. Fitting it lets the
threshold for a risk ``q`` far smaller than ``1/n`` be extrapolated:

    z_q = t + sigma/gamma * ((q n / N_t) ** -gamma - 1)    (gamma != 0)
    z_q = t - sigma * log(q n / N_t)                       (gamma == 0)

where ``n`` is the number of calibration scores and ``N_t`` the number of peaks
above ``t``. The GPD is fitted by maximum likelihood with Grimshaw's reduction to
a one-dimensional root search (as in the paper), keeping the exponential
(``gamma = 0``) fit as a candidate and choosing the candidate with the highest
likelihood. Degenerate tails (too few peaks, all peaks equal, no finite fit) fall
back to the empirical quantile with a logged warning; ``details_`` records which.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy.optimize import brentq

from tripwire.core.errors import ConfigError
from tripwire.training.thresholds.base import CalibrationData, Threshold, finite_scores

log = logging.getLogger(__name__)

#: Fewer peaks than this and a GPD fit is noise; use the empirical quantile.
MIN_PEAKS = 10
_GAMMA_ZERO = 1e-8
_GRID = 300


class PotThreshold(Threshold):
    """Threshold at risk ``q`` from a GPD fitted to the tail of held-out normal scores.

    Parameters
    ----------
    q : float in (0, 1)
        Risk: the target probability that a normal row scores above the threshold.
    level : float in (0, 1)
        Quantile of the calibration scores used as the initial threshold ``t``
        (the paper's 0.98 by default).

    Attributes
    ----------
    value_ : float
    details_ : dict
        ``t``, ``n``, ``n_peaks``, ``gamma``, ``sigma`` and ``fallback`` (None, or
        why the empirical quantile was used instead).
    """

    method = "pot"

    def __init__(self, q: float = 1e-3, level: float = 0.98) -> None:
        super().__init__()
        if not 0.0 < q < 1.0 or not 0.0 < level < 1.0:
            raise ConfigError(f"threshold pot: q and level must be in (0, 1), got {q}, {level}")
        self.q = q
        self.level = level
        self.details_: dict[str, Any] = {}

    @property
    def params(self) -> dict[str, Any]:
        return {"q": self.q, "level": self.level}

    def to_dict(self) -> dict[str, Any]:
        """The base record plus ``details`` (the GPD fit or why it fell back)."""
        return {**super().to_dict(), "details": dict(self.details_)}

    def _fit(self, data: CalibrationData) -> float:
        s = finite_scores(data.normal_scores, "held-out normal scores", self.method)
        value, self.details_ = pot_quantile(s, self.q, self.level)
        if self.details_["fallback"]:
            log.warning(
                "pot:%s: %s; using the empirical %.6g quantile instead",
                self.q,
                self.details_["fallback"],
                1.0 - self.q,
            )
        return value


def pot_quantile(scores: np.ndarray, q: float, level: float = 0.98) -> tuple[float, dict[str, Any]]:
    """The POT estimate of the (1 - q) quantile of ``scores`` and fit details.

    Parameters
    ----------
    scores : ndarray of shape (n,)
    q : float
        Risk (tail probability).
    level : float
        Quantile used as the initial threshold.

    Returns
    -------
    value : float
    details : dict
        See :class:`PotThreshold`.
    """
    t = float(np.quantile(scores, level))
    excesses = scores[scores > t] - t
    details: dict[str, Any] = {"t": t, "n": int(scores.size), "n_peaks": int(excesses.size),
                               "gamma": None, "sigma": None, "fallback": None}  # fmt: skip
    ratio = q * scores.size / max(excesses.size, 1)
    details["fallback"] = _degenerate(excesses, ratio, q, level)
    if details["fallback"] is None:
        gamma, sigma = fit_gpd(excesses)
        details.update(gamma=gamma, sigma=sigma)
        z = _tail_quantile(t, gamma, sigma, ratio) if sigma > 0 else math.nan
        if math.isfinite(z):
            return z, details
        details["fallback"] = f"GPD fit gave no finite quantile (gamma={gamma}, sigma={sigma})"
    return float(np.quantile(scores, 1.0 - q, method="higher")), details


def _degenerate(excesses: np.ndarray, ratio: float, q: float, level: float) -> str | None:
    """Why the tail cannot (or need not) be fitted, or None."""
    if excesses.size < MIN_PEAKS:
        return f"only {excesses.size} peaks above t (need {MIN_PEAKS})"
    if ratio >= 1.0:
        return f"q={q} is not beyond the initial level {level}"  # no extrapolation needed
    if float(np.ptp(excesses)) <= 1e-12 * max(1.0, float(excesses.mean())):
        return "all peaks are equal (zero variance tail)"
    return None


def _tail_quantile(t: float, gamma: float, sigma: float, ratio: float) -> float:
    if abs(gamma) < _GAMMA_ZERO:
        return t - sigma * math.log(ratio)
    try:
        return t + sigma / gamma * (ratio ** (-gamma) - 1.0)
    except OverflowError:
        return math.inf


def gpd_loglik(y: np.ndarray, gamma: float, sigma: float) -> float:
    """Log-likelihood of excesses ``y`` (> 0) under GPD(gamma, sigma)."""
    if not sigma > 0:
        return -math.inf
    n = y.size
    if abs(gamma) < _GAMMA_ZERO:
        return -n * math.log(sigma) - float(y.sum()) / sigma
    z = 1.0 + gamma * y / sigma
    if np.any(z <= 0):
        return -math.inf
    return -n * math.log(sigma) - (1.0 + 1.0 / gamma) * float(np.log(z).sum())


def fit_gpd(y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood GPD ``(gamma, sigma)`` for positive excesses ``y``.

    Grimshaw (1993): at a stationary point of the likelihood, ``x = gamma/sigma``
    solves ``u(x) v(x) = 1`` with ``u(x) = mean(1 / (1 + x y))`` and
    ``v(x) = 1 + mean(log(1 + x y))``, and then ``gamma = v(x) - 1``. Roots lie
    in ``(-1/max(y), 0)`` and ``(0, 2 (mean - min) / min**2)``. Every root found,
    the exponential fit (``gamma = 0``, ``sigma = mean``) and the boundary
    ``gamma = -1`` (``sigma = max``) are compared by likelihood.
    """
    y = np.asarray(y, dtype=np.float64)
    ymin, ymax, ymean = float(y.min()), float(y.max()), float(y.mean())
    candidates = [(0.0, ymean)]
    for x in _grimshaw_roots(y, ymin, ymax, ymean):
        gamma = float(np.log1p(x * y).mean())  # v(x) - 1
        if abs(x) > 0 and math.isfinite(gamma):
            candidates.append((gamma, gamma / x))
    scored = [(gpd_loglik(y, g, s), g, s) for g, s in candidates]
    # gamma = -1 (uniform excesses on [0, max]) is the boundary where the likelihood
    # stops being bounded; it wins for short flat tails that have no interior root.
    scored.append((-y.size * math.log(ymax), -1.0, ymax))
    best = max(scored, key=lambda c: c[0])
    return best[1], best[2]


def _grimshaw_roots(y: np.ndarray, ymin: float, ymax: float, ymean: float) -> list[float]:
    def w(x: float) -> float:
        xy = x * y
        return float(np.mean(1.0 / (1.0 + xy)) * (1.0 + np.mean(np.log1p(xy))) - 1.0)

    # Stay away from x = 0 (a trivial root) and from the pole at -1/ymax.
    eps = 1e-8 / ymean
    left_end = 1.0 / ymax
    grids = [-np.geomspace(eps, left_end * (1 - 1e-9), _GRID)]
    right_end = 2.0 * (ymean - ymin) / (ymin * ymin) if ymin > 0 else 0.0
    if right_end > eps and math.isfinite(right_end):
        grids.append(np.geomspace(eps, right_end, _GRID))
    roots: list[float] = []
    for grid in grids:
        values = np.array([w(x) for x in grid])
        ok = np.isfinite(values)
        for i in np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(values[:-1]) != np.sign(values[1:]))):
            try:
                roots.append(float(brentq(w, grid[i], grid[i + 1], xtol=1e-14 / ymean)))
            except (ValueError, RuntimeError):
                continue
    return roots
