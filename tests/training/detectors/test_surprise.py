"""``Surprise``: raw scores -> -log tail p-values among normal reference scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.surprise import Surprise

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def test_at_reference_scores_it_is_the_conformal_p_value():
    ref = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    s = Surprise().fit(ref)
    n = len(ref)
    for value in ref:
        at_least = int((ref >= value).sum())
        assert s.transform(np.array([value]))[0] == pytest.approx(
            math.log((n + 1) / (at_least + 1))
        )


def test_zero_at_or_below_the_smallest_reference_score():
    s = Surprise().fit(np.arange(10.0))
    np.testing.assert_array_equal(s.transform(np.array([-100.0, -1.0, 0.0])), 0.0)


def test_grows_linearly_beyond_the_largest_with_slope_one_per_q99_minus_median():
    ref = np.arange(1.0, 100.0)
    s = Surprise().fit(ref)
    median, q99 = np.quantile(ref, [0.5, 0.99])
    assert s.tail_scale_ == pytest.approx(q99 - median)
    top = s.transform(np.array([99.0]))[0]
    assert top == pytest.approx(math.log(100 / 2))
    far = s.transform(np.array([99.0 + 3 * s.tail_scale_]))[0]
    assert far == pytest.approx(top + 3)


def test_interpolates_between_reference_scores():
    s = Surprise().fit(np.array([0.0, 10.0]))  # 2 rows >= 0, 1 row >= 10
    mid = s.transform(np.array([5.0]))[0]
    assert mid == pytest.approx(math.log(3 / 2.5))


@settings(max_examples=60, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(1, 60), elements=finite),
    queries=arrays(np.float64, st.integers(2, 40), elements=finite),
)
@example(ref=np.array([-1.95e-172, 1.0]), queries=np.array([0.0, -1.0]))
def test_monotone_non_negative_and_order_preserving(ref, queries):
    s = Surprise().fit(ref)
    q = np.sort(queries)
    out = s.transform(q)
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    assert np.all(np.diff(out) >= 0)
    # strictly increasing wherever the raw score clearly increases and lies clearly
    # inside or above the range (1e-172 above the minimum moves the p-value by less
    # than a float can show)
    strict = (np.diff(q) > 1e-3) & (q[1:] > ref.min() + 1e-3)
    assert np.all(np.diff(out)[strict] > 0)


def test_degenerate_reference_still_orders_rows_beyond_it():
    s = Surprise().fit(np.zeros(50))
    assert s.tail_scale_ == 1.0
    out = s.transform(np.array([0.0, 0.5, 2.0]))
    assert out[0] == pytest.approx(math.log(51 / 51)) and out[0] < out[1] < out[2]


def test_nan_stays_nan_and_bad_reference_raises():
    s = Surprise().fit(np.arange(5.0))
    out = s.transform(np.array([np.nan, 1.0]))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    with pytest.raises(DetectorError):
        Surprise().fit(np.array([1.0, np.nan]))
    with pytest.raises(DetectorError):
        Surprise().fit(np.array([]))


def test_array_round_trip_is_exact():
    rng = np.random.default_rng(0)
    s = Surprise().fit(rng.gamma(2.0, size=300))
    back = Surprise.from_arrays(s.to_arrays("m."), "m.")
    q = rng.gamma(2.0, size=100) * 3
    np.testing.assert_array_equal(back.transform(q), s.transform(q))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda a: a.pop("m.values"),
        lambda a: a.update({"m.values": a["m.values"][::-1].copy()}),
        lambda a: a.update({"m.at_least": a["m.at_least"][::-1].copy()}),
        lambda a: a.update({"m.params": np.array([5.0, 0.0])}),
        lambda a: a.update({"m.params": np.array([7.0, 1.0])}),
    ],
)
def test_inconsistent_saved_maps_are_refused(corrupt):
    arrays = Surprise().fit(np.array([1.0, 2.0, 2.0, 4.0, 9.0])).to_arrays("m.")
    corrupt(arrays)
    with pytest.raises(DetectorError):
        Surprise.from_arrays(arrays, "m.")
