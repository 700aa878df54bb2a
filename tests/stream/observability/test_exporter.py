"""The /metrics server, serving what ``record_batch`` recorded."""

from __future__ import annotations

import urllib.request
from collections import Counter

import numpy as np
from prometheus_client import CollectorRegistry

from tripwire.stream.observability.exporter import MetricsServer
from tripwire.stream.observability.health import Health
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.batch import BatchResult, record_batch


def test_record_batch_and_the_http_endpoint() -> None:
    metrics = Metrics(CollectorRegistry())
    result = BatchResult(
        consumed=7, scored=4, anomalies=2, suppressed=1, invalid=Counter(malformed=2, empty=1),
        scores=np.array([0.5, 1.0, 2.0, 4.0]), event_ms=np.array([0.0, np.nan, 0.0, 0.0]),
        inference_seconds=0.003,
    )  # fmt: skip
    record_batch(metrics, result, threshold=2.0)
    server = MetricsServer(metrics, Health(), "127.0.0.1", 0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read().decode()
    finally:
        server.stop()
    lines = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and line[0] != "#")
    assert float(lines["tripwire_events_consumed_total"]) == 7
    assert float(lines["tripwire_events_scored_total"]) == 4
    assert float(lines["tripwire_anomalies_total"]) == 2
    assert float(lines["tripwire_alerts_suppressed_total"]) == 1
    assert float(lines['tripwire_invalid_events_total{reason="malformed"}']) == 2
    assert float(lines['tripwire_invalid_events_total{reason="non_finite"}']) == 0  # zeros exported
    assert float(lines['tripwire_score_ratio_bucket{le="1.0"}']) == 3  # 0.25, 0.5, 1.0
    assert float(lines["tripwire_score_ratio_count"]) == 4
    assert float(lines["tripwire_end_to_end_latency_seconds_count"]) == 3  # unknown times skipped
    assert float(lines["tripwire_batch_size_sum"]) == 4
    assert float(lines["tripwire_inference_seconds_count"]) == 1
    assert float(lines["tripwire_last_processed_timestamp_seconds"]) > 1.7e9
