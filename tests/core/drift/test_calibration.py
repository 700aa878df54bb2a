"""Measured false-alarm rate on stationary streams and detection delays of shifts.

The scenarios are the benchmark's (benchmarks/drift.py); the bounds are the stated
rate's binomial 99.9 % upper quantile, so a miscalibrated test fails.
"""

from __future__ import annotations

import pytest
from scipy import stats

from benchmarks.drift import SCENARIOS, run_scenario
from tripwire.core.drift import DriftConfig

CONFIG = DriftConfig(drift_window=1000, drift_step=1000, drift_false_alarm_rate=0.05)


def test_stationary_false_alarms_within_the_stated_rate() -> None:
    windows = 400
    result = run_scenario("stationary", CONFIG, windows, 0, seed=11)
    alarms = result["false_alarms"]
    assert alarms["any"] <= stats.binom.ppf(0.999, windows, CONFIG.drift_false_alarm_rate)
    for family in ("alert_rate", "score", "features"):
        assert alarms[family] <= stats.binom.ppf(0.999, windows, CONFIG.drift_false_alarm_rate / 3)


@pytest.mark.parametrize(
    "scenario, max_delay",
    [
        ("mean shift 1 sd, 3 of 50 features", 1),
        ("variance doubling, all features", 1),
        ("gradual 1 sd over 20 windows, 3 features", 8),
        ("anomaly rate 1% -> 5%", 2),
    ],
)
def test_shift_detected_and_named(scenario: str, max_delay: int) -> None:
    config = DriftConfig(drift_window=1000, drift_step=1000, drift_false_alarm_rate=0.001)
    result = run_scenario(scenario, config, 60, 30, seed=12)
    assert result["delay_windows"] is not None and result["delay_windows"] <= max_delay
    if SCENARIOS[scenario][2]:
        assert result["named_right"], result["top_features"]
        assert result["named_all"] or scenario.startswith("gradual"), result["top_features"]
    if scenario.startswith("anomaly"):
        assert "alert_rate" in result["fired"]
