"""The sliding-window monitor and the reference artifact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tripwire.core.drift import DriftConfig, DriftMonitor, DriftReference
from tripwire.core.drift.reference import read_reference, save_reference
from tripwire.core.errors import ConfigError, RegistryError

NAMES = tuple(f"f{i}" for i in range(6))


@pytest.fixture
def reference() -> DriftReference:
    rng = np.random.default_rng(0)
    return DriftReference.build(rng.normal(size=(5000, 6)), rng.chisquare(6, size=2000), 16.8)


def test_report_due_every_step_once_the_window_is_full(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, NAMES, DriftConfig(drift_window=300, drift_step=100))
    rng = np.random.default_rng(1)
    due = [monitor.update(rng.normal(size=(50, 6)), rng.chisquare(6, 50)) for _ in range(12)]
    assert [r is not None for r in due] == [False] * 5 + [True, False] * 3 + [True]
    assert all(r.window == 300 for r in due if r is not None)


def test_window_holds_exactly_the_last_events(reference: DriftReference) -> None:
    """Odd batch sizes wrap the ring: the report equals one over the last rows."""
    config = DriftConfig(drift_window=250, drift_step=250)
    monitor = DriftMonitor(reference, NAMES, config)
    rng = np.random.default_rng(2)
    X, s = rng.normal(size=(1000, 6)), rng.chisquare(6, 1000)
    for start, stop in [(0, 7), (7, 300), (300, 301), (301, 999), (999, 1000)]:
        monitor.update(X[start:stop], s[start:stop])
    fresh = DriftMonitor(reference, NAMES, config)
    fresh.update(X[-250:], s[-250:])
    got, want = monitor.evaluate(), fresh.evaluate()
    assert (got.events, want.events, got.window) == (1000, 250, 250)
    assert (got.alerts, got.score_ks) == (want.alerts, want.score_ks)
    np.testing.assert_array_equal(got.feature_drift, want.feature_drift)
    np.testing.assert_allclose(got.mean_shift_sd, want.mean_shift_sd, atol=1e-9)


def test_shift_names_the_feature(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, NAMES, DriftConfig(drift_window=1000, drift_step=1000))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 6))
    X[:, 4] += 1.0
    report = monitor.update(X, rng.chisquare(6, 1000))
    assert report is not None and report.feature_alarm
    assert report.top_features() == ["f4"] and report.drifting_features == 1
    assert report.to_dict()["features"]["top"][0]["mean_shift_sd"] == pytest.approx(1.0, abs=0.1)
    ranked = report.ranked_features()
    assert [f.name for f in ranked][:1] == ["f4"] and len(ranked) == report.top_k
    assert [f.drift for f in ranked] == sorted(report.feature_drift, reverse=True)[: report.top_k]
    assert report.to_dict()["features"]["top"] == [f.to_json() for f in ranked]
    assert list(ranked[0].to_json()) == [
        "name", "drift", "p_value", "psi", "mean_shift_sd", "std_ratio"
    ]  # fmt: skip


def test_bad_config_and_feature_count_are_refused(reference: DriftReference) -> None:
    with pytest.raises(ConfigError):
        DriftMonitor(reference, NAMES, DriftConfig(drift_window=100, drift_step=200))
    with pytest.raises(ConfigError):
        DriftMonitor(reference, NAMES, DriftConfig(drift_false_alarm_rate=0.0))
    with pytest.raises(ConfigError, match="6 features"):
        DriftMonitor(reference, NAMES[:5], DriftConfig())


def test_reference_round_trip(reference: DriftReference, tmp_path: Path) -> None:
    name = save_reference(reference, tmp_path)
    back = read_reference(tmp_path / name, 6)
    for key, value in reference.to_arrays().items():
        np.testing.assert_array_equal(back.to_arrays()[key], value)
    assert back.calibration_alerts == int((reference.scores > 16.8).sum())


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("format", np.array([2], np.int64), "format 2"),
        ("edges", np.zeros((5, 9)), "edges of shape"),
        ("edges", np.full((6, 9), np.nan), "non-finite"),
        ("probs", np.full((6, 10), 0.2), "sum to 1"),
        ("scores", np.array([2.0, 1.0]), "not sorted"),
        ("scores", np.zeros(3, np.float32), "float64"),
        ("calibration_alerts", np.array([10**9], np.int64), "out of range"),
        ("std", -np.ones(6), "mean/std"),
    ],
)
def test_untrusted_reference_arrays_are_refused(
    reference: DriftReference, key: str, value: np.ndarray, problem: str
) -> None:
    arrays = {**reference.to_arrays(), key: value}
    with pytest.raises(RegistryError, match=problem):
        DriftReference.from_arrays(arrays, 6)


def test_garbage_file_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "r.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(RegistryError, match="cannot read the drift reference"):
        read_reference(tmp_path / "r.safetensors", 6)


def test_missing_key_is_refused(reference: DriftReference) -> None:
    arrays = reference.to_arrays()
    del arrays["mean"]
    with pytest.raises(RegistryError, match="'mean'"):
        DriftReference.from_arrays(arrays, 6)
    assert replace(reference).n_features == 6


def test_kept_sums_match_the_window_after_many_passes(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, NAMES, DriftConfig(drift_window=50, drift_step=50))
    rng = np.random.default_rng(4)
    for _ in range(500):  # 10 000 rows: 200 passes of the ring, resummed every 64
        monitor.update(rng.normal(3.0, size=(20, 6)) * 1e3, rng.chisquare(6, 20))
    got = monitor.evaluate()
    window = monitor._X.astype(np.float64)
    want_shift = (window.mean(axis=0) - reference.mean) / reference.std
    np.testing.assert_allclose(got.mean_shift_sd, want_shift, rtol=1e-9)
    np.testing.assert_allclose(got.std_ratio, window.std(axis=0) / reference.std, rtol=1e-6)
