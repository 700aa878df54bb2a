"""Bulk histogram updates, the /metrics server, settings validation and --help."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import fields, replace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from stream.exporter import MetricsServer, observe_many, record_batch
from stream.metrics import Metrics
from stream.scoring import BatchResult
from stream.settings import WorkerSettings
from training.config import Secret, load_env
from training.errors import ConfigError


def test_observe_many_equals_observing_one_by_one() -> None:
    reg = CollectorRegistry()
    buckets = (0.1, 0.5, 1.0, 2.0)
    bulk = Histogram("bulk", "h", buckets=buckets, registry=reg)
    loop = Histogram("loop", "h", buckets=buckets, registry=reg)
    values = np.array([0.0, 0.1, 0.1000001, 0.5, 0.7, 1.0, 2.0, 2.5, 100.0, -1.0, np.nan, np.inf])
    observe_many(bulk, values)
    for v in values[np.isfinite(values)]:
        loop.observe(v)
    for le in ("0.1", "0.5", "1.0", "2.0", "+Inf"):
        a = reg.get_sample_value("bulk_bucket", {"le": le})
        assert a == reg.get_sample_value("loop_bucket", {"le": le}), le
    assert reg.get_sample_value("bulk_sum") == pytest.approx(reg.get_sample_value("loop_sum"))
    assert reg.get_sample_value("bulk_count") == 10


def test_record_batch_and_the_http_endpoint() -> None:
    metrics = Metrics(CollectorRegistry())
    result = BatchResult(
        consumed=7, scored=4, anomalies=2, suppressed=1, invalid=Counter(malformed=2, empty=1),
        scores=np.array([0.5, 1.0, 2.0, 4.0]), event_ms=np.array([0.0, np.nan, 0.0, 0.0]),
        inference_seconds=0.003,
    )  # fmt: skip
    record_batch(metrics, result, threshold=2.0)
    server = MetricsServer(metrics, "127.0.0.1", 0)
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


def valid(**changes: object) -> WorkerSettings:
    return replace(WorkerSettings(bootstrap="h:9092", model_ref="m"), **changes)  # type: ignore[arg-type]


def test_settings_validate() -> None:
    valid().validate()
    assert valid(bootstrap="kafka://a:1, b:2").bootstrap_servers == ["a:1", "b:2"]
    assert (valid().model_name, valid().model_alias) == ("m", "production")
    assert valid(model_ref="m@canary").model_alias == "canary"
    bad = [
        {"bootstrap": ""}, {"model_ref": ""}, {"model_ref": "m@3"}, {"max_batch": 0},
        {"max_wait": -1.0}, {"session_timeout": 1.0}, {"security_protocol": "TLS"},
        {"sasl_mechanism": "GSSAPI"}, {"auto_offset_reset": "middle"},
        {"alert_topic": "features"}, {"scores_topic": "anomalies"}, {"dlq_topic": ""},
    ]  # fmt: skip
    for change in bad:
        with pytest.raises(ConfigError):
            valid(**change).validate()


def test_settings_from_env_and_secret_masking() -> None:
    s = load_env(WorkerSettings, {"TRIPWIRE_MAX_BATCH": "64", "TRIPWIRE_SASL_PASSWORD": "hunter2"})
    assert s.max_batch == 64 and isinstance(s.sasl_password, Secret)
    assert "hunter2" not in repr(s) and s.sasl_password.reveal() == "hunter2"


def test_help_documents_every_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tripwire", "worker", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    for f in fields(WorkerSettings):
        option = "--model" if f.name == "model_ref" else "--" + f.name.replace("_", "-")
        assert option in out, option
        assert f"TRIPWIRE_{f.name.upper()}" in out, f.name
    assert "docs/formats.md" in out


def test_worker_refuses_to_start_without_a_model(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire", "worker", "--bootstrap", "127.0.0.1:1",
         "--model", "nope", "--registry", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "cannot load model nope" in proc.stderr
