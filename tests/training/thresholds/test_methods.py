"""fpr, f1 and contamination thresholds on synthetic scores, and spec parsing."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.core.errors import ConfigError
from tripwire.training.thresholds import (
    CalibrationData,
    ContaminationThreshold,
    F1Threshold,
    FprThreshold,
    PotThreshold,
    parse_threshold,
)


def _data(
    train: np.ndarray | None = None,
    normal: np.ndarray | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> CalibrationData:
    return CalibrationData(
        train_scores=np.zeros(0) if train is None else train,
        normal_scores=np.zeros(0) if normal is None else normal,
        val_scores=None if val is None else val[0],
        val_labels=None if val is None else val[1],
    )


# -- fpr -------------------------------------------------------------------------


def test_fpr_uses_held_out_normal_scores_not_training_scores() -> None:
    train = np.linspace(0, 1, 1000)  # optimistic: the model has seen these
    normal = np.linspace(0, 2, 1000)
    t = FprThreshold(0.05).fit(_data(train=train, normal=normal))
    assert t.value_ == pytest.approx(np.quantile(normal, 0.95), abs=0.01)
    assert np.mean(normal > t.value_) <= 0.05


def test_fpr_realised_rate_on_a_large_sample_is_close_to_target() -> None:
    rng = np.random.default_rng(0)
    cal, fresh = rng.normal(size=20000), rng.normal(size=200000)
    t = FprThreshold(0.01).fit(_data(normal=cal)).value
    assert 0.008 <= np.mean(fresh > t) <= 0.012


def test_fpr_without_held_out_scores_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="held-out normal"):
        FprThreshold(0.01).fit(_data(train=np.arange(10.0)))


def test_to_dict_records_method_params_value() -> None:
    t = FprThreshold(0.05).fit(_data(normal=np.arange(100.0)))
    assert t.to_dict() == {"method": "fpr", "params": {"rate": 0.05}, "value": 95.0, "rows": 100}


def test_unfitted_threshold_has_no_value() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        FprThreshold(0.1).to_dict()


# -- f1 --------------------------------------------------------------------------


def test_f1_separable_classes_give_midpoint_between_the_classes() -> None:
    normal = np.array([0.1, 0.5, 1.0, 2.0])
    anomalous = np.array([6.0, 7.0, 9.0])
    scores = np.concatenate([anomalous, normal])  # order must not matter
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    t = F1Threshold().fit(_data(val=(scores, labels))).value
    # Between max normal (2.0) and min anomaly (6.0), not (min_anomaly - normal)/2.
    assert t == pytest.approx(4.0)
    assert np.all(normal <= t) and np.all(anomalous > t)


def test_f1_overlapping_classes_maximise_f1() -> None:
    rng = np.random.default_rng(1)
    normal, anomalous = rng.normal(0, 1, 2000), rng.normal(2.5, 1, 400)
    scores = np.concatenate([normal, anomalous])
    labels = np.r_[np.zeros(2000, int), np.ones(400, int)]
    t = F1Threshold().fit(_data(val=(scores, labels))).value

    def f1(th: float) -> float:
        pred = scores > th
        tp = np.sum(pred & (labels == 1))
        return 2 * tp / (pred.sum() + labels.sum())

    grid = np.linspace(-2, 6, 801)
    assert f1(t) >= max(f1(g) for g in grid) - 1e-12


def test_f1_with_tied_scores_only_cuts_between_distinct_values() -> None:
    scores = np.array([1.0, 1.0, 1.0, 3.0, 3.0])
    labels = np.array([0, 0, 1, 1, 1])
    t = F1Threshold().fit(_data(val=(scores, labels))).value
    assert t == pytest.approx(2.0)


def test_f1_without_labelled_anomalies_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="labelled anomalies"):
        F1Threshold().fit(_data(normal=np.arange(5.0)))
    with pytest.raises(ConfigError, match="labelled anomalies"):
        F1Threshold().fit(_data(val=(np.arange(5.0), np.zeros(5, int))))


# -- contamination ---------------------------------------------------------------


def test_contamination_flags_that_share_of_training_rows() -> None:
    rng = np.random.default_rng(2)
    train = rng.exponential(size=10000)
    t = ContaminationThreshold(0.1).fit(_data(train=train)).value
    assert np.mean(train > t) == pytest.approx(0.1, abs=0.001)
    assert np.mean(train > t) <= 0.1


# -- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "params"),
    [
        (None, FprThreshold, {"rate": 0.01}),
        ("fpr:0.05", FprThreshold, {"rate": 0.05}),
        ("fpr", FprThreshold, {"rate": 0.01}),
        (" F1 ", F1Threshold, {}),
        ("contamination:0.2", ContaminationThreshold, {"contamination": 0.2}),
        ("pot:1e-4", PotThreshold, {"q": 1e-4, "level": 0.98}),
        ("pot:1e-4,0.95", PotThreshold, {"q": 1e-4, "level": 0.95}),
    ],
)
def test_parse_threshold(spec: str | None, cls: type, params: dict) -> None:
    t = parse_threshold(spec)
    assert type(t) is cls and t.params == params
    assert parse_threshold(t.spec()).params == params  # spec round-trips


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fpt:0.01", "unknown threshold method"),
        ("fpr:abc", "not a number"),
        ("fpr:0", r"in \(0, 1\)"),
        ("fpr:1.5", r"in \(0, 1\)"),
        ("contamination:-0.1", r"in \(0, 1\)"),
        ("f1:0.5", "at most 0"),
        ("pot:1e-3,0.9,3", "at most 2"),
        ("pot:0.01,1.0", r"in \(0, 1\)"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_threshold(spec)


def test_non_finite_scores_are_refused() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        FprThreshold(0.1).fit(_data(normal=np.array([1.0, np.nan, 2.0])))


def test_fpr_warns_only_when_too_few_scores_for_its_rate(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="tripwire.training.thresholds.fpr"):
        FprThreshold(0.01).fit(_data(normal=np.arange(1999.0)))
        assert len(caplog.records) == 1 and "2000 or more" in caplog.records[0].message
        FprThreshold(0.01).fit(_data(normal=np.arange(2000.0)))
        FprThreshold(0.1).fit(_data(normal=np.arange(200.0)))
    assert len(caplog.records) == 1
