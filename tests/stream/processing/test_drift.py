"""DriftWatch: the serving version's monitor, its metrics and its log lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tripwire.core.drift import DriftConfig, DriftMonitor, DriftReport
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.drift import DriftWatch
from tripwire.training.pipeline import train
from tripwire.training.settings import TrainSettings

CONFIG = DriftConfig(drift_window=1000, drift_step=500)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scorer]:
    tmp = tmp_path_factory.mktemp("drift-watch")
    rng = np.random.default_rng(0)
    np.savez(tmp / "train.npz", X=rng.normal(size=(3000, 4)).astype(np.float32))
    train(TrainSettings(data=str(tmp / "train.npz"), registry=str(tmp / "reg"), model="knn",
                        name="m", plot="none", seed=0))  # fmt: skip
    return tmp / "reg", load_scorer(tmp / "reg", "m@1")


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def feed(watch: DriftWatch, scorer: Scorer, X: np.ndarray, batch: int = 100) -> None:
    for start in range(0, len(X), batch):
        rows = X[start : start + batch].astype(np.float32)
        watch.observe(scorer, rows, scorer.score(rows).scores)


def loaded(watch: DriftWatch, scorer: Scorer) -> None:
    """Start loading the version's reference and wait for it (a future, not a sleep)."""
    empty = np.zeros((0, scorer.n_features), np.float32), np.zeros(0)
    watch.observe(scorer, *empty)
    if watch._loading is not None:  # still loading: wait, then let it take the result
        watch._loading.result()
        watch.observe(scorer, *empty)
    assert watch._loading is None


def make_watch(root: Path) -> tuple[DriftWatch, Metrics]:
    metrics = Metrics(CollectorRegistry())
    return DriftWatch(str(root), CONFIG, metrics.drift), metrics


def test_stationary_stream_is_monitored_without_alarm(published: tuple[Path, Scorer]) -> None:
    root, scorer = published
    watch, metrics = make_watch(root)
    try:
        loaded(watch, scorer)
        assert value(metrics, "tripwire_drift_monitoring") == 1
        feed(watch, scorer, np.random.default_rng(1).normal(size=(3000, 4)))
        assert value(metrics, "tripwire_drift_evaluations_total") == 5  # at 1000, 1500, ... 3000
        for test in ("alert_rate", "score", "features"):
            assert value(metrics, "tripwire_drift_alarm", test=test) == 0
        assert value(metrics, "tripwire_drift_features_drifting") == 0
        low = value(metrics, "tripwire_drift_alert_rate_band", bound="low")
        high = value(metrics, "tripwire_drift_alert_rate_band", bound="high")
        assert low is not None and high is not None and low <= 0.01 <= high
    finally:
        watch.close()


def test_shift_sets_the_alarm_names_the_feature_and_logs_once(
    published: tuple[Path, Scorer], caplog: pytest.LogCaptureFixture
) -> None:
    root, scorer = published
    watch, metrics = make_watch(root)
    try:
        loaded(watch, scorer)
        X = np.random.default_rng(2).normal(size=(4000, 4))
        X[:, 1] += 1.5
        with caplog.at_level("INFO", logger="tripwire.stream.processing.drift"):
            feed(watch, scorer, X)
        assert value(metrics, "tripwire_drift_alarm", test="features") == 1
        assert value(metrics, "tripwire_drift_alarms_total", test="features") == 7
        assert value(metrics, "tripwire_drift_top_features_info", features="f1") == 1
        assert (value(metrics, "tripwire_drift_feature_largest") or 0) > 1
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "top: f1" in warnings[0].getMessage()
    finally:
        watch.close()


def test_version_without_reference_leaves_monitoring_off(
    registry_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub = registry_factory(name="old", kind="ae")
    old = load_scorer(pub.root, f"old@{pub.version}")
    watch, metrics = make_watch(pub.root)
    try:
        with caplog.at_level("INFO"):
            loaded(watch, old)
            feed(watch, old, np.zeros((2000, old.n_features)))
        assert value(metrics, "tripwire_drift_monitoring") == 0
        assert value(metrics, "tripwire_drift_evaluations_total") == 0
        assert "no drift reference" in caplog.text
    finally:
        watch.close()


def test_a_failing_loader_turns_drift_off_not_the_worker(published: tuple[Path, Scorer]) -> None:
    root, scorer = published

    def broken(root: str, ref: str) -> Any:
        raise OSError("disk on fire")

    metrics = Metrics(CollectorRegistry())
    watch = DriftWatch(str(root), CONFIG, metrics.drift, loader=broken)
    try:
        loaded(watch, scorer)
        feed(watch, scorer, np.zeros((1500, 4)))
        assert value(metrics, "tripwire_drift_monitoring") == 0
    finally:
        watch.close()


def test_batches_are_held_until_a_report_is_due(published: tuple[Path, Scorer]) -> None:
    """Odd batch sizes: one monitor update per due report, the same reports as batch by batch."""
    root, scorer = published
    watch, metrics = make_watch(root)
    try:
        loaded(watch, scorer)
        assert watch.monitor is not None
        direct = DriftMonitor(watch.monitor.reference, scorer.feature_names, CONFIG)
        calls: list[int] = []
        update = watch.monitor.update

        def counted(X: np.ndarray, scores: np.ndarray) -> DriftReport | None:
            calls.append(len(scores))
            return update(X, scores)

        watch.monitor.update = counted  # type: ignore[method-assign]
        rng = np.random.default_rng(5)
        want = []
        for size in rng.integers(1, 140, size=60).tolist():
            rows = rng.normal(size=(size, 4)).astype(np.float32)
            scores = scorer.score(rows).scores
            watch.observe(scorer, rows, scores)
            report = direct.update(rows, scores)
            if report is not None:
                want.append(report)
        assert len(want) >= 5 and len(calls) == len(want)  # held between reports
        assert value(metrics, "tripwire_drift_evaluations_total") == len(want)
        assert watch.monitor.events == want[-1].events == sum(calls)
        last = want[-1]
        assert value(metrics, "tripwire_drift_score_ks") == pytest.approx(last.score_ks, abs=0)
        assert value(metrics, "tripwire_drift_feature_largest") == last.largest_drift
    finally:
        watch.close()
