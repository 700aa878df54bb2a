"""Drift monitoring in a real worker: real broker, registry published by ``train``.

A stationary stretch of events evaluates without alarm; a 1.5 sd shift of one
feature then sets ``tripwire_drift_alarm{test="features"}`` and names the feature.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.kafka import create_topics
from tests.stream.harness import WorkerProcess, packed_event, produce, wait_for
from tripwire.embedded import EmbeddedBroker
from tripwire.training.pipeline import train
from tripwire.training.settings import TrainSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = 6


def send(broker: EmbeddedBroker, topic: str, X: np.ndarray, tag: str) -> None:
    """``X`` as packed records of 100 vectors."""
    records = [
        packed_event([f"{tag}-{i + j}" for j in range(len(chunk))], chunk, key=f"k{i % 7}")
        for i in range(0, len(X), 100)
        for chunk in [X[i : i + 100].astype(np.float32)]
    ]
    produce(broker.bootstrap, topic, records)


def test_worker_alarms_on_a_feature_shift(broker: EmbeddedBroker, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", X=rng.normal(size=(4000, D)).astype(np.float32))
    train(TrainSettings(data=str(tmp_path / "train.npz"), registry=str(tmp_path / "reg"),
                        model="knn", name="drifty", plot="none", promote="production"))  # fmt: skip
    topics = {k: f"{k}-drift-{time.monotonic_ns()}" for k in ("features", "alerts", "dlq")}
    asyncio.run(create_topics(broker.bootstrap, [topics["features"]], 1))
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=broker.bootstrap, registry=tmp_path / "reg",
        model_ref="drifty", input_topic=topics["features"], alert_topic=topics["alerts"],
        dlq_topic=topics["dlq"], group_id=f"g-{topics['features']}",
        drift_window=1000, drift_step=500,
    )  # fmt: skip
    try:
        wait_for(lambda: worker.metric("tripwire_ready") == 1, 120, "the worker to be ready")
        wait_for(lambda: worker.metric("tripwire_drift_monitoring") == 1, 60, "the reference")
        send(broker, topics["features"], rng.normal(size=(3000, D)), "calm")
        wait_for(lambda: worker.metric("tripwire_events_scored_total") >= 3000, 120, "3000 scored")
        assert worker.metric("tripwire_drift_evaluations_total") >= 1  # one per batch at most
        assert worker.metric('tripwire_drift_alarm{test="features"}') == 0
        X = rng.normal(size=(2000, D))
        X[:, 4] += 1.5
        send(broker, topics["features"], X, "shifted")
        wait_for(lambda: worker.metric('tripwire_drift_alarm{test="features"}') == 1, 120,
                 "the feature drift alarm")  # fmt: skip
        assert worker.metric('tripwire_drift_top_features_info{features="f4"}') == 1
        assert "drift alarm for drifty@1" in worker.log() and "top: f4" in worker.log()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
