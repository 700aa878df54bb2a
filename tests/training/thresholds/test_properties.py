"""hypothesis properties every calibration method must keep on arbitrary scores."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tripwire.training.thresholds import (
    CalibrationData,
    ContaminationThreshold,
    F1Threshold,
    FprThreshold,
    PotThreshold,
)

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
score_arrays = arrays(np.float64, st.integers(1, 400), elements=finite)
rates = st.floats(min_value=1e-4, max_value=0.5)


@given(scores=score_arrays, rate=rates)
def test_fpr_realises_at_most_its_rate_on_calibration_data(scores, rate) -> None:
    value = FprThreshold(rate).fit(CalibrationData(np.zeros(1), scores)).value
    assert np.isfinite(value)
    assert np.mean(scores > value) <= rate + 1e-12
    assert value in scores  # rounded up to an observed score


@given(scores=score_arrays, r1=rates, r2=rates)
def test_fpr_is_monotone_in_rate(scores, r1, r2) -> None:
    lo, hi = sorted((r1, r2))
    data = CalibrationData(np.zeros(1), scores)
    assert FprThreshold(lo).fit(data).value >= FprThreshold(hi).fit(data).value


@given(scores=score_arrays, c=rates)
def test_contamination_flags_at_most_c_of_training_rows(scores, c) -> None:
    value = ContaminationThreshold(c).fit(CalibrationData(scores, np.zeros(1))).value
    assert np.isfinite(value) and np.mean(scores > value) <= c + 1e-12


@given(
    data=st.integers(2, 200).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, n, elements=finite),
            arrays(np.int8, n, elements=st.integers(0, 1)),
        )
    )
)
def test_f1_threshold_achieves_the_best_f1_of_any_cut(data) -> None:
    scores, labels = data
    if labels.min() == labels.max():
        labels[0] = 1 - labels[0]  # both classes present
    value = F1Threshold().fit(CalibrationData(np.zeros(1), np.zeros(1), scores, labels)).value
    assert np.isfinite(value)

    def f1(th: float) -> float:
        pred = scores > th
        tp = int(np.sum(pred & (labels == 1)))
        return 2 * tp / (int(pred.sum()) + int(labels.sum()))

    cuts = np.r_[np.unique(scores), np.nextafter(scores.min(), -np.inf)]
    assert f1(value) >= max(f1(c) for c in cuts) - 1e-12


@settings(deadline=None)
@given(scores=score_arrays, q=st.floats(min_value=1e-7, max_value=0.5))
def test_pot_threshold_is_always_finite(scores, q) -> None:
    t = PotThreshold(q).fit(CalibrationData(np.zeros(1), scores))
    assert np.isfinite(t.value)
    if t.details_["fallback"] is None:
        # An extrapolated tail quantile lies beyond the initial threshold.
        assert t.value >= t.details_["t"]
