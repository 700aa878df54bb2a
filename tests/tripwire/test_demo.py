"""``tripwire demo`` end to end: embedded broker, real worker process, real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.demo import DemoSettings, classification_metrics, run_demo


def test_classification_metrics_counts() -> None:
    import numpy as np

    truth = np.array([1, 1, 0, 0, 0], dtype=bool)
    pred = np.array([1, 0, 1, 0, 0], dtype=bool)
    m = classification_metrics(truth, pred)
    assert m == {"accuracy": 0.6, "precision": 0.5, "recall": 0.5, "f1": 0.5}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("model", ["ae", "vae"])
def test_demo_meets_the_tutorials_bar(model: str, tmp_path: Path) -> None:
    result = run_demo(DemoSettings(model=model, registry=str(tmp_path / "registry"), timeout=180))
    assert result.metrics["accuracy"] >= 0.99
    assert result.metrics["recall"] >= 0.99
    assert result.alerts >= 190  # 200 anomalies in the tutorial's test set
    assert result.events_per_s > 0
    assert result.latency_ms["p99"] >= result.latency_ms["p50"] > 0
    # every process the demo started is gone: checked by the autouse leak fixture
