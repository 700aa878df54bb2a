from __future__ import annotations

import json

import numpy as np
import pytest

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.scaling import Standardizer


def test_standardises_to_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[5.0, -3.0, 100.0], scale=[2.0, 0.1, 30.0], size=(5000, 3))
    Z = Standardizer().fit(X).transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-4)


def test_constant_feature_is_centred_not_divided_by_zero():
    X = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    s = Standardizer().fit(X)
    assert s.scale_[1] == 1.0
    Z = s.transform(np.array([[3.0, 9.0]]))
    assert np.all(np.isfinite(Z))
    assert Z[0, 1] == pytest.approx(2.0)


def test_dict_round_trip_is_exact_through_json():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 4)) * [1e-3, 1.0, 1e3, 3.3]
    s = Standardizer().fit(X)
    back = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.mean_.dtype == np.float32 and back.scale_.dtype == np.float32
    np.testing.assert_array_equal(back.mean_, s.mean_)
    np.testing.assert_array_equal(back.scale_, s.scale_)
    np.testing.assert_array_equal(back.transform(X), s.transform(X))


@pytest.mark.parametrize(
    "bad",
    [
        {"mean": [0.0]},
        {"mean": [0.0, 1.0], "scale": [1.0]},
        {"mean": [0.0], "scale": [0.0]},
        {"mean": [0.0], "scale": [float("nan")]},
        {"mean": "x", "scale": [1.0]},
    ],
)
def test_invalid_dict_is_rejected(bad):
    with pytest.raises(DetectorError):
        Standardizer.from_dict(bad)


def test_fit_rejects_empty_input():
    with pytest.raises(DetectorError):
        Standardizer().fit(np.empty((0, 3)))
