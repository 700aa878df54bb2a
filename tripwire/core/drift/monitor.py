"""A sliding-window drift monitor: fed once per micro-batch, bounded memory.

:class:`DriftMonitor` keeps the last ``window`` events (features as float32 and
scores) in ring buffers and, every ``step`` events once the window is full,
runs the three tests of :mod:`tripwire.core.drift.statistics` on the whole
window in one vectorised pass. Memory is ``window * (4 d + 8)`` bytes whatever
the stream's length; nothing runs per event.

The stated false-alarm rate: on a stationary stream (events drawn from the
distribution the model was trained and calibrated on), one evaluation raises any
alarm with probability at most ``false_alarm_rate``, split evenly (Bonferroni)
between the alert-rate band, the score KS test and the per-feature chi-square
tests (themselves Bonferroni across features). Successive evaluations of
overlapping windows are correlated, so false alarms come in short runs; their
long-run share of evaluations stays within the rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tripwire.core.drift.reference import DriftReference
from tripwire.core.drift.statistics import (
    AlertRateBand,
    FeatureChi2,
    ScoreKS,
    bin_counts,
    bin_index,
    psi,
    tally,
)
from tripwire.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """How far one feature drifted in a window (a report's ``features.top[]`` entry)."""

    name: str
    #: Chi-square over its critical value: ``> 1`` is drifting.
    drift: float
    p_value: float
    psi: float
    #: Shift of the window's mean, in training standard deviations.
    mean_shift_sd: float
    #: The window's standard deviation over the training one.
    std_ratio: float

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the report (``tripwire drift --json``): the fields, in order."""
        return asdict(self)


@dataclass(frozen=True)
class DriftConfig:
    """Window, step and alarm calibration of a drift monitor."""

    drift_window: int = field(default=5000, metadata={"help": "events in the sliding window"})
    drift_step: int = field(
        default=1000, metadata={"help": "events between two evaluations of the window"}
    )
    drift_false_alarm_rate: float = field(
        default=0.001,
        metadata={"help": "chance that one evaluation of a stationary window raises any alarm"},
    )
    drift_expected_anomaly_rate: float = field(
        default=0.0,
        metadata={"help": "share of true anomalies expected in the stream (shifts the band)"},
    )
    drift_top_features: int = field(
        default=5, metadata={"help": "drifting features named in reports"}
    )

    def validate(self) -> None:
        if self.drift_window < 10 or not 1 <= self.drift_step <= self.drift_window:
            raise ConfigError("drift: need drift_window >= 10 and 1 <= drift_step <= drift_window")
        if not 0.0 < self.drift_false_alarm_rate < 1.0:
            raise ConfigError("drift_false_alarm_rate must be in (0, 1)")
        if not 0.0 <= self.drift_expected_anomaly_rate < 1.0:
            raise ConfigError("drift_expected_anomaly_rate must be in [0, 1)")
        if self.drift_top_features < 0:
            raise ConfigError("drift_top_features must be >= 0")


@dataclass(frozen=True)
class DriftReport:
    """One evaluation of a window.

    Attributes
    ----------
    events : int
        Events the monitor had seen when it evaluated.
    window : int
        Events in the evaluated window.
    alerts, band_low, band_high : int
        Alerts in the window and the in-band counts (inclusive).
    expected_rate : float
        The band's centre as a rate.
    score_ks, score_ks_critical, score_p : float
        KS distance to the calibration scores, its critical value and p-value.
    feature_drift : ndarray (d,)
        Chi-square over its critical value per feature: ``> 1`` is drifting.
    feature_p, feature_psi, mean_shift_sd, std_ratio : ndarray (d,)
        Per-feature p-value, PSI, mean shift in training sd, sd ratio.
    feature_names : tuple of str
    top_k : int
        How many features :attr:`top_features` names.
    """

    events: int
    window: int
    alerts: int
    band_low: int
    band_high: int
    expected_rate: float
    score_ks: float
    score_ks_critical: float
    score_p: float
    feature_drift: np.ndarray
    feature_p: np.ndarray
    feature_psi: np.ndarray
    mean_shift_sd: np.ndarray
    std_ratio: np.ndarray
    feature_names: tuple[str, ...]
    top_k: int = 5

    @property
    def alert_rate(self) -> float:
        return self.alerts / self.window

    @property
    def rate_alarm(self) -> bool:
        return not self.band_low <= self.alerts <= self.band_high

    @property
    def score_alarm(self) -> bool:
        return self.score_ks > self.score_ks_critical

    @property
    def drifting_features(self) -> int:
        return int((self.feature_drift > 1.0).sum())

    @property
    def largest_drift(self) -> float:
        return float(self.feature_drift.max()) if len(self.feature_drift) else 0.0

    @property
    def feature_alarm(self) -> bool:
        return self.drifting_features > 0

    @property
    def alarm(self) -> bool:
        return self.rate_alarm or self.score_alarm or self.feature_alarm

    def top_features(self) -> list[str]:
        """Names of the most drifting features (drifting ones only), largest first."""
        order = np.argsort(-self.feature_drift, kind="stable")[: self.top_k]
        return [self.feature_names[i] for i in order if self.feature_drift[i] > 1.0]

    def ranked_features(self) -> list[FeatureDrift]:
        """The ``top_k`` features by drift (drifting or not), largest first."""
        order = np.argsort(-self.feature_drift, kind="stable")[: self.top_k]
        return [
            FeatureDrift(
                self.feature_names[i],
                float(self.feature_drift[i]),
                float(self.feature_p[i]),
                float(self.feature_psi[i]),
                float(self.mean_shift_sd[i]),
                float(self.std_ratio[i]),
            )  # fmt: skip
            for i in order.tolist()
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: the alarms, the statistics and the top features."""
        return {
            "events": self.events,
            "window": self.window,
            "alarm": self.alarm,
            "alert_rate": {
                "alarm": self.rate_alarm, "alerts": self.alerts, "rate": self.alert_rate,
                "expected": self.expected_rate, "band": [self.band_low, self.band_high],
            },
            "score": {
                "alarm": self.score_alarm, "ks": self.score_ks,
                "critical": self.score_ks_critical, "p_value": self.score_p,
            },
            "features": {
                "alarm": self.feature_alarm, "drifting": self.drifting_features,
                "largest_drift": self.largest_drift,
                "top": [f.to_json() for f in self.ranked_features()],
            },
        }  # fmt: skip


class DriftMonitor:
    """Sliding-window drift statistics of one model version's stream.

    Parameters
    ----------
    reference : DriftReference
    feature_names : sequence of str
        One per column of the rows passed to :meth:`update`.
    config : DriftConfig
    """

    def __init__(
        self, reference: DriftReference, feature_names: tuple[str, ...], config: DriftConfig
    ) -> None:
        config.validate()
        if len(feature_names) != reference.n_features:
            raise ConfigError(
                f"drift reference has {reference.n_features} features, "
                f"the model {len(feature_names)}"
            )
        self.reference, self.config, self.feature_names = reference, config, feature_names
        alpha = config.drift_false_alarm_rate / 3.0
        self._ks = ScoreKS(reference.scores, alpha)
        self._chi2 = FeatureChi2(reference.probs, reference.reference_rows, alpha)
        self._alpha = alpha
        self._bands: dict[int, AlertRateBand] = {}
        size = config.drift_window
        self._X = np.zeros((size, reference.n_features), np.float32)
        self._scores = np.zeros(size, np.float64)
        # each row's bins, and the window's counts kept up to date row by row
        self._bins = np.zeros((size, reference.n_features), np.uint8)
        self._n_bins = int(reference.edges.shape[1]) + 1
        self._counts = np.zeros((reference.n_features, self._n_bins), np.int64)
        # sums of (x - training mean) and its square over the window, kept up to date;
        # recomputed exactly from the ring every RESUM_WRAPS passes (rounding drift)
        self._sums = np.zeros((2, reference.n_features), np.float64)
        self._wraps = 0
        self._filled = self._pos = self._since = 0
        self.events = 0
        full = self._band(size)
        _ = full.low, full.high  # built now (the worker builds monitors off its event loop)

    def update(self, X: np.ndarray, scores: np.ndarray) -> DriftReport | None:
        """Add a micro-batch (n, d) and its scores (n,); a report when one is due.

        A report is due once the window is full and ``drift_step`` events arrived
        since the last one (at most one per call).
        """
        n = len(scores)
        self.events += n
        self._since += n
        self._append(np.asarray(X, np.float32), np.asarray(scores, np.float64))
        if self._filled < self.config.drift_window or self._since < self.config.drift_step:
            return None
        self._since = 0
        return self.evaluate()

    @property
    def due_in(self) -> int:
        """Events :meth:`update` can take before the next report is due (at least 1).

        A caller may gather that many rows before calling it, in one call: the report
        comes at the same event and on the same window as batch by batch.
        """
        c = self.config
        return max(1, c.drift_window - self._filled, c.drift_step - self._since)

    def _append(self, X: np.ndarray, scores: np.ndarray) -> None:
        size = self.config.drift_window
        if len(scores) >= size:
            X, scores = X[-size:], scores[-size:]
        bins = bin_index(X, self.reference.edges)
        first = min(len(scores), size - self._pos)
        self._write(self._pos, X[:first], scores[:first], bins[:first])
        self._write(0, X[first:], scores[first:], bins[first:])
        self._pos = (self._pos + len(scores)) % size
        if first < len(scores) or self._pos == 0:
            self._wraps += 1
            if self._wraps % RESUM_WRAPS == 0:
                self._sums = _moments(self._X[: self._filled], self.reference.mean)

    def _write(self, at: int, X: np.ndarray, scores: np.ndarray, bins: np.ndarray) -> None:
        """Overwrite ring rows ``at:at+len``, moving the evicted rows out of the counts."""
        end = at + len(scores)
        if end == at:
            return
        n_bins = self._n_bins
        evicted = min(end, self._filled) - at
        if evicted > 0:
            self._counts -= tally(self._bins[at : at + evicted], n_bins)
            self._sums -= _moments(self._X[at : at + evicted], self.reference.mean)
        self._X[at:end], self._scores[at:end], self._bins[at:end] = X, scores, bins
        self._counts += tally(bins, n_bins)
        self._sums += _moments(X, self.reference.mean)
        self._filled = max(self._filled, end)

    def evaluate(self) -> DriftReport:
        """Test the current window (whatever its fill) against the reference."""
        if self._filled == 0:
            raise ConfigError("drift: nothing to evaluate yet")
        return evaluate_window(
            self._X[: self._filled], self._scores[: self._filled],
            (self._counts.copy(), self._sums.copy()), self.reference,
            self._ks, self._chi2, self._band(self._filled), self.feature_names,
            self.events, self.config.drift_top_features,
        )  # fmt: skip

    def _band(self, n: int) -> AlertRateBand:
        if n not in self._bands:
            ref = self.reference
            self._bands[n] = AlertRateBand(
                n, ref.calibration_alerts, ref.calibration_rows, self._alpha,
                self.config.drift_expected_anomaly_rate,
            )  # fmt: skip
        return self._bands[n]


#: Ring passes between exact recomputations of the window's sums.
RESUM_WRAPS = 64


def _moments(X: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Sums of ``X - centre`` and of its square per column; shape (2, d), float64."""
    dev = X.astype(np.float64) - centre
    return np.stack([dev.sum(axis=0), np.einsum("ij,ij->j", dev, dev)])


def evaluate_window(
    X: np.ndarray,
    scores: np.ndarray,
    kept: tuple[np.ndarray, np.ndarray] | None,
    ref: DriftReference,
    ks: ScoreKS,
    chi2: FeatureChi2,
    band: AlertRateBand,
    names: tuple[str, ...],
    events: int,
    top_k: int,
) -> DriftReport:
    """All statistics of one window of rows ``X`` (n, d) and their ``scores`` (n,).

    ``kept``: the rows' bin counts (d, B) and :func:`_moments` (2, d) when the caller
    keeps them up to date; computed from ``X`` when ``None``.
    """
    n = len(scores)
    counts, sums = (bin_counts(X, ref.edges), _moments(X, ref.mean)) if kept is None else kept
    shift = sums[0] / n
    var = np.maximum(sums[1] / n - shift**2, 0.0)
    stat = chi2.statistic(counts)
    distance = ks.distance(scores)
    std = np.where(ref.std > 0, ref.std, 1.0)
    ratio = np.where(ref.std > 0, np.sqrt(var) / std, 1.0)
    return DriftReport(
        events=events, window=n, alerts=int((scores > ref.threshold).sum()),
        band_low=band.low, band_high=band.high, expected_rate=band.expected,
        score_ks=distance, score_ks_critical=ks.critical(n), score_p=ks.p_value(distance, n),
        feature_drift=stat / chi2.critical, feature_p=chi2.p_values(stat),
        feature_psi=psi(counts, ref.probs),
        mean_shift_sd=shift / std,
        std_ratio=ratio, feature_names=names, top_k=top_k,
    )  # fmt: skip


__all__ = ["DriftConfig", "DriftMonitor", "DriftReport", "evaluate_window"]
