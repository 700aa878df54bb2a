"""Every Prometheus metric the worker exports, declared in one place.

Built against a ``CollectorRegistry`` passed in (never the global default), so tests
and several workers in one process stay apart. Names follow the Prometheus
conventions: ``tripwire_`` prefix, ``_total`` counters, base units (seconds).
Series with labels are pre-created so dashboards see zeros rather than gaps. The
registry also carries prometheus_client's process, GC and platform collectors
(``process_resident_memory_bytes``, ``process_start_time_seconds``, ...), which the
restart and memory alerts read.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

#: Why an input record went to the dead-letter topic (the ``reason`` label and the
#: ``tripwire-reason`` DLQ header): the values of
#: ``tripwire.stream.wire.dead_letters.DeadLetterReason`` but ``output_too_large`` (its
#: input was scored), spelled out here as observability sits below wire (a test
#: keeps the two equal).
INVALID_REASONS: tuple[str, ...] = (
    "empty",  # zero-length value
    "oversize",  # value larger than max_message_bytes
    "unknown_encoding",  # neither JSON nor a known binary layout
    "malformed",  # undecodable bytes / JSON syntax error / truncated binary
    "schema",  # decodes, but not the event shape (missing id/features, wrong types)
    "feature_count",  # wrong number of features for the model
    "feature_names",  # named features missing or unknown to the model
    "non_numeric",  # a feature value that is not a number
    "non_finite",  # NaN or +/-inf
    "processing_error",  # processing this record raised (its type and message in the DLQ)
)

RELOAD_RESULTS: tuple[str, ...] = ("success", "failure")
#: What became of an output the broker refused for its size (``tripwire_outputs_refused_total``).
REFUSED_OUTCOMES: tuple[str, ...] = ("dead_lettered", "dropped")
#: The drift tests (the ``test`` label of the drift alarm metrics).
DRIFT_TESTS: tuple[str, ...] = ("alert_rate", "score", "features")
#: Which model(s) alerted on an event both scored (``tripwire_shadow_alerts_total``).
SHADOW_AGREEMENT: tuple[str, ...] = ("production_only", "shadow_only", "both")
#: The two models of a shadow comparison (the ``model`` label of its rate and scores).
SHADOW_MODELS: tuple[str, ...] = ("production", "shadow")
#: Why the shadow did not score, or its output was lost (``tripwire_shadow_failures_total``).
SHADOW_FAILURES: tuple[str, ...] = (
    "load",  # a load attempt: the alias or version could not be read or loaded
    "incompatible",  # a load attempt: other features than production's, or batch dependent
    "scoring",  # a micro-batch: the shadow's model call raised
    "non_finite",  # a vector: the shadow gave it a NaN/inf score
    "output",  # a shadow record: building it raised or it exceeds --max-output-bytes
    "produce",  # a shadow record: not acknowledged by the broker, or dropped (backlog)
)

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    # A backlog or a stalled partition makes outputs minutes late: without these, p99
    # would flatten at the last finite bucket instead of showing it.
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
INFERENCE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
#: Buckets of score / threshold: 1.0 is the alert line.
SCORE_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


#: Env var an image build sets to the commit it was built from (docs/deploy.md).
REVISION_ENV = "TRIPWIRE_REVISION"


class Metrics:
    """The worker's metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # the default registry's collectors, here on ours (never the global one)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.build_info = Gauge(
            "tripwire_build_info",
            "1, labelled with the versions this worker runs.",
            ["version", "revision", "python", "faust", "torch"],
            registry=registry,
        )
        self.build_info.labels(**build_labels()).set(1)
        self.ready = Gauge(
            "tripwire_ready",
            "1 while /readyz answers 200 (model loaded, broker reachable, in the group).",
            registry=registry,
        )
        self.broker_up = Gauge(
            "tripwire_broker_up",
            "1 while the last probe of the broker (a metadata request) succeeded.",
            registry=registry,
        )
        self.heartbeat_age = Gauge(
            "tripwire_event_loop_heartbeat_age_seconds",
            "Seconds since the event loop last ticked, computed at scrape time.",
            registry=registry,
        )
        self.events_consumed = Counter(
            "tripwire_events_consumed_total",
            "Input records consumed (valid or not), one per feature vector.",
            registry=registry,
        )
        self.events_scored = Counter(
            "tripwire_events_scored_total", "Feature vectors scored.", registry=registry
        )
        self.anomalies = Counter(
            "tripwire_anomalies_total",
            "Anomaly events produced to the alert topic.",
            registry=registry,
        )
        self.suppressed = Counter(
            "tripwire_alerts_suppressed_total",
            "Anomalies not alerted because their entity was in its cooldown.",
            registry=registry,
        )
        self.invalid = Counter(
            "tripwire_invalid_events_total",
            "Input records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in INVALID_REASONS:
            self.invalid.labels(reason=reason)
        self.batch_size = Histogram(
            "tripwire_batch_size",
            "Feature vectors per scored micro-batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "tripwire_inference_seconds",
            "Time of one batched model call.",
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        self.inference_cpu_seconds = Counter(
            "tripwire_inference_cpu_seconds_total",
            "CPU time of the scoring thread in batched model calls.",
            registry=registry,
        )
        self.latency_seconds = Histogram(
            "tripwire_end_to_end_latency_seconds",
            "Event timestamp to output produced (alert or score record).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.score_ratio = Histogram(
            "tripwire_score_ratio",
            "Anomaly score divided by the alert threshold (>1 alerts).",
            buckets=SCORE_RATIO_BUCKETS,
            registry=registry,
        )
        self.threshold = Gauge(
            "tripwire_threshold", "Alert threshold of the serving model.", registry=registry
        )
        self.model_info = Gauge(
            "tripwire_model_info",
            "The serving model: 1 for the current name/version, absent otherwise.",
            ["name", "version"],
            registry=registry,
        )
        self.reloads = Counter(
            "tripwire_model_reloads_total",
            "Model reload attempts after the alias moved, by result.",
            ["result"],
            registry=registry,
        )
        for result in RELOAD_RESULTS:
            self.reloads.labels(result=result)
        self.consumer_lag = Gauge(
            "tripwire_consumer_lag",
            "Records between the committed/consumed position and the log end, per partition.",
            ["partition"],
            registry=registry,
        )
        self.last_processed = Gauge(
            "tripwire_last_processed_timestamp_seconds",
            "Unix time at which the worker last finished a batch.",
            registry=registry,
        )
        self.produce_errors = Counter(
            "tripwire_produce_errors_total",
            "Output records (alert, score, DLQ) the broker failed to acknowledge.",
            registry=registry,
        )
        self.outputs_refused = Counter(
            "tripwire_outputs_refused_total",
            "Output records refused as too large, replaced by a dead letter or dropped.",
            ["outcome"],
            registry=registry,
        )
        for outcome in REFUSED_OUTCOMES:
            self.outputs_refused.labels(outcome=outcome)
        self.drift = DriftMetrics(registry)
        self.shadow = ShadowMetrics(registry)

    def watch_health(
        self,
        ready: Callable[[], bool],
        broker_up: Callable[[], bool],
        heartbeat_age: Callable[[], float],
    ) -> None:
        """Compute the health gauges from these functions at every scrape."""
        self.ready.set_function(lambda: float(ready()))
        self.broker_up.set_function(lambda: float(broker_up()))
        self.heartbeat_age.set_function(heartbeat_age)

    def set_model(self, name: str, version: str, threshold: float) -> None:
        """Point the ``_info`` gauge and threshold at the serving model."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version).set(1)
        self.threshold.set(threshold)


class DriftMetrics:
    """The drift monitor's figures of its last evaluation (docs/formats.md, "Drift")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"tripwire_drift_{name}", doc, labels, registry=registry)

        self.monitoring = gauge(
            "monitoring", "1 while the serving version's drift reference is being monitored."
        )
        self.evaluations = Counter(
            "tripwire_drift_evaluations_total", "Evaluations of the drift window.",
            registry=registry,
        )  # fmt: skip
        self.alarm = gauge("alarm", "1 if the last evaluation alarmed, by test.", ("test",))
        self.alarms = Counter(
            "tripwire_drift_alarms_total", "Evaluations that alarmed, by test.", ["test"],
            registry=registry,
        )  # fmt: skip
        for test in DRIFT_TESTS:
            self.alarm.labels(test=test)
            self.alarms.labels(test=test)
        self.alert_rate = gauge("alert_rate", "Share of the window's events that alerted.")
        self.alert_rate_band = gauge(
            "alert_rate_band", "Calibrated band of the alert rate (a window), by bound.",
            ("bound",),
        )  # fmt: skip
        for bound in ("low", "high"):
            self.alert_rate_band.labels(bound=bound)
        self.score_ks = gauge("score_ks", "KS distance of window scores to calibration scores.")
        self.score_ks_critical = gauge("score_ks_critical", "Critical value of score_ks.")
        self.feature_largest = gauge(
            "feature_largest", "Largest per-feature chi-square over its critical value (>1 drifts)."
        )
        self.features_drifting = gauge("features_drifting", "Features drifting in the window.")
        self.top_features = Info(
            "tripwire_drift_top_features", "The most drifting features of the last evaluation.",
            registry=registry,
        )  # fmt: skip


class ShadowMetrics:
    """Shadow scoring: a second version scores every batch, never alerts (docs/formats.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"tripwire_shadow_{name}", doc, labels, registry=registry)

        self.alerts = counter(
            "alerts",
            "Events both models scored that at least one alerted on, by which (agreement).",
            ("agreement",),
        )
        for agreement in SHADOW_AGREEMENT:
            self.alerts.labels(agreement=agreement)
        self.events_scored = counter("events_scored", "Events scored by production and shadow.")
        self.failures = counter(
            "failures", "Shadow failures (production unaffected), by reason.", ("reason",)
        )
        for reason in SHADOW_FAILURES:
            self.failures.labels(reason=reason)
        self.reloads = counter("reloads", "New shadow versions swapped in after the first.")
        self.records = counter("records_produced", "Shadow records acknowledged by the broker.")
        self.alert_rate = Gauge(
            "tripwire_shadow_alert_rate",
            "Share of the events both scored that each model alerted on, since this pair of "
            "versions began.",
            ["model"],
            registry=registry,
        )
        self.score_ratio = Histogram(
            "tripwire_shadow_score_ratio",
            "Score / threshold of each model on the events both scored (>1 alerts).",
            ["model"],
            buckets=SCORE_RATIO_BUCKETS,
            registry=registry,
        )
        for model in SHADOW_MODELS:
            self.alert_rate.labels(model=model)
            self.score_ratio.labels(model=model)
        self.inference_seconds = Histogram(
            "tripwire_shadow_inference_seconds", "Time of one shadow model call.",
            buckets=INFERENCE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.threshold = Gauge(
            "tripwire_shadow_threshold", "Alert threshold of the shadow version.", registry=registry
        )
        self.model_info = Gauge(
            "tripwire_shadow_model_info",
            "The shadow version: 1 for its name/version while loaded, absent otherwise.",
            ["name", "version"],
            registry=registry,
        )

    def set_model(self, name: str, version: str, threshold: float) -> None:
        """Point the shadow's ``_info`` gauge and threshold at the version it scores with."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version).set(1)
        self.threshold.set(threshold)


def build_labels() -> dict[str, str]:
    """``version``, ``revision``, ``python``, ``faust``, ``torch`` of this process.

    Read from package metadata, without importing faust or torch.
    """

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "none"

    return {
        "version": version("tripwire"),
        "revision": revision(),
        "python": platform.python_version(),
        "faust": version("faust-streaming"),
        "torch": version("torch"),
    }


def revision() -> str:
    """The commit this code is: ``$TRIPWIRE_REVISION`` (images), else git, else unknown."""
    if os.environ.get(REVISION_ENV):
        return os.environ[REVISION_ENV]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - optional, PATH lookup
            cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
