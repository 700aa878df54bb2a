"""Shadow scoring in the batch processor, with real published models in a real registry.

Production's outputs must be byte-identical with and without a shadow, whatever the
shadow does; the agreement counts must be exact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.fixtures.registry import Published, anomalous_rows, corrupt_weights, normal_rows
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.batch import BatchProcessor, BatchResult, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.processing.shadow import (
    SHADOW_HEADER,
    Shadow,
    ShadowWatcher,
    Throttled,
    shadow_source,
)
from tripwire.stream.wire.alerts import AlertBuilder, alert_id
from tripwire.stream.wire.codecs import F32_TYPE
from tripwire.stream.wire.records import InputRecord
from tripwire.stream.wire.schemas import output_problems
from tripwire.training.registry import Registry

TOPICS = Topics("alerts", "dlq", "scores")
SOURCE = "tripwire://g/in"


def sample(metrics: Metrics, metric: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


def records() -> list[InputRecord]:
    X = np.vstack([normal_rows(60, seed=3), anomalous_rows(12, seed=4)])
    out = []
    for i, x in enumerate(X):
        headers = [("content-type", F32_TYPE.encode()), ("tripwire-id", f"e{i}".encode())]
        value = x.astype("<f4").tobytes()
        out.append(InputRecord("in", 0, i, 5000 + i, f"k{i % 5}".encode(), value, headers))
    out.append(InputRecord("in", 0, len(X), None, None, b"{broken"))  # one dead letter too
    return out


def processor(shadow: Shadow | None = None) -> BatchProcessor:
    return BatchProcessor(
        TOPICS, AlertBuilder(SOURCE), Cooldown(0.0), top_k=3, max_message_bytes=100_000,
        clock=lambda: 1000.0, monotonic=lambda: 1000.0, shadow=shadow,
    )  # fmt: skip


class Fixture:
    """A registry with ``demo@production`` and a ``demo@candidate`` alias to point."""

    def __init__(self, production: Published) -> None:
        self.production = production
        self.root = str(production.root)
        self.scorer = load_scorer(self.root, "demo@production")
        self.metrics = Metrics(CollectorRegistry())

    def shadow(
        self, topic: str | None = "shadow", loader: Any = load_scorer, **kwargs: Any
    ) -> Shadow:
        watcher = ShadowWatcher(
            self.root, "demo", "candidate", self.metrics.shadow, lambda: self.scorer,
            loader=loader,
        )  # fmt: skip
        watcher.check()
        return Shadow(
            watcher, self.metrics.shadow, AlertBuilder(shadow_source(SOURCE)), topic,
            top_k=3, max_output_bytes=kwargs.get("max_output_bytes", 1 << 20),
        )  # fmt: skip

    def promote(self, version: str) -> None:
        Registry(self.root).promote("demo", "candidate", version)


@pytest.fixture
def fx(registry_factory: Callable[..., Published]) -> Fixture:
    return Fixture(registry_factory())


def run(fx: Fixture, shadow: Shadow | None) -> BatchResult:
    result = processor(shadow).process(records(), fx.scorer)
    if shadow is not None:
        shadow.record(result.shadow)
    return result


def test_a_shadow_of_the_same_version_agrees_everywhere(fx: Fixture) -> None:
    fx.promote(fx.production.version)
    shadow = fx.shadow()
    plain, shadowed = run(fx, None), run(fx, shadow)
    assert shadowed.outputs == plain.outputs  # production byte for byte
    assert shadowed.anomalies == plain.anomalies >= 10
    np.testing.assert_array_equal(shadowed.scores, plain.scores)
    m = fx.metrics
    assert sample(m, "tripwire_shadow_events_scored_total") == plain.scored == 72
    assert sample(m, "tripwire_shadow_alerts_total", agreement="both") == plain.anomalies
    assert sample(m, "tripwire_shadow_alerts_total", agreement="production_only") == 0
    assert sample(m, "tripwire_shadow_alerts_total", agreement="shadow_only") == 0
    rate = plain.anomalies / plain.scored
    assert sample(m, "tripwire_shadow_alert_rate", model="shadow") == pytest.approx(rate)
    assert sample(m, "tripwire_shadow_alert_rate", model="production") == pytest.approx(rate)
    assert sample(m, "tripwire_shadow_model_info", name="demo", version="1") == 1
    assert sample(m, "tripwire_shadow_score_ratio_count", model="shadow") == 72
    assert sample(m, "tripwire_shadow_inference_seconds_count") == 1


def test_a_lower_threshold_alerts_on_exactly_the_events_between(
    fx: Fixture, registry_factory: Callable[..., Published]
) -> None:
    low = fx.scorer.threshold * 0.5
    candidate = registry_factory(root=fx.production.root, threshold=low, promote="candidate")
    X = np.vstack([normal_rows(60, seed=3), anomalous_rows(12, seed=4)])
    scores = fx.scorer.score(X).scores
    between = int(((scores > low) & (scores <= fx.scorer.threshold)).sum())
    assert between > 0  # the seeded data has events between the two thresholds
    shadow = fx.shadow()
    result = run(fx, shadow)
    assert result.outputs == run(fx, None).outputs
    m = fx.metrics
    assert sample(m, "tripwire_shadow_alerts_total", agreement="shadow_only") == between
    assert sample(m, "tripwire_shadow_alerts_total", agreement="both") == result.anomalies
    assert sample(m, "tripwire_shadow_alerts_total", agreement="production_only") == 0
    assert sample(m, "tripwire_shadow_threshold") == low
    # the shadow topic: one marked record per shadow alert, never on the alert topic
    assert result.shadow is not None
    records_ = result.shadow.outputs
    assert len(records_) == between + result.anomalies
    assert {r.topic for r in records_} == {"shadow"}
    assert not [o for o in result.outputs if o.topic == "shadow"]
    for r in records_:
        assert dict(r.headers or ())[SHADOW_HEADER] == b"1"
        doc = json.loads(r.value)
        assert output_problems("anomaly", doc) == []
        assert doc["source"] == "tripwire://g/in/shadow"
        assert doc["data"]["model"] == {"name": "demo", "version": candidate.version}
        assert doc["id"] == alert_id(doc["data"]["input_id"], "demo", candidate.version)
        assert doc["data"]["threshold"] == low and doc["data"]["score"] > low
        assert r.key == doc["subject"].encode() and len(doc["data"]["top_features"]) == 3


def test_a_shadow_that_raises_never_touches_production(fx: Fixture) -> None:
    fx.promote(fx.production.version)

    def raising(root: str, ref: str) -> Scorer:
        scorer = load_scorer(root, ref)

        def boom(X: np.ndarray) -> Any:
            raise RuntimeError("shadow exploded")

        scorer.detector.score_and_explain = boom  # type: ignore[method-assign]
        return scorer

    shadow = fx.shadow(loader=raising)
    assert run(fx, shadow).outputs == run(fx, None).outputs
    m = fx.metrics
    assert sample(m, "tripwire_shadow_failures_total", reason="scoring") == 1
    assert sample(m, "tripwire_shadow_events_scored_total") == 0


def test_an_incompatible_or_broken_shadow_is_refused_and_counted(
    fx: Fixture, registry_factory: Callable[..., Published], caplog: pytest.LogCaptureFixture
) -> None:
    registry_factory(root=fx.production.root, n_features=6, promote="candidate")
    with caplog.at_level(logging.ERROR):
        shadow = fx.shadow()
    assert shadow.watcher.current is None
    assert "feature count 6 != serving model's 8" in caplog.text
    assert "production unaffected" in caplog.text
    assert sample(fx.metrics, "tripwire_shadow_failures_total", reason="incompatible") == 1
    result = run(fx, shadow)
    assert result.shadow is None and result.outputs == run(fx, None).outputs
    broken = registry_factory(root=fx.production.root, seed=2, promote="candidate")
    corrupt_weights(broken)
    assert shadow.watcher.check() == "failure"
    assert sample(fx.metrics, "tripwire_shadow_failures_total", reason="load") == 1
    assert shadow.watcher.check() is None  # counted once a minute, not per poll


def test_the_shadow_alias_is_followed(
    fx: Fixture, registry_factory: Callable[..., Published]
) -> None:
    shadow = fx.shadow()  # no candidate alias yet: counted, nothing scored
    assert shadow.watcher.current is None
    assert sample(fx.metrics, "tripwire_shadow_failures_total", reason="load") == 1
    fx.promote(fx.production.version)
    assert shadow.watcher.check() == "success"
    assert sample(fx.metrics, "tripwire_shadow_reloads_total") == 0  # the first version
    run(fx, shadow)
    v2 = registry_factory(root=fx.production.root, threshold=0.0, promote="candidate")
    assert shadow.watcher.check() == "success"
    assert shadow.watcher.current is not None and shadow.watcher.current.version == v2.version
    assert sample(fx.metrics, "tripwire_shadow_reloads_total") == 1
    assert sample(fx.metrics, "tripwire_shadow_model_info", name="demo", version="1") == 0
    run(fx, shadow)
    # the rates are of the current pair only: threshold 0 alerts on every event
    assert sample(fx.metrics, "tripwire_shadow_alert_rate", model="shadow") == 1.0
    assert sample(fx.metrics, "tripwire_shadow_events_scored_total") == 144


def test_shadow_records_over_the_output_limit_are_dropped_and_counted(fx: Fixture) -> None:
    fx.promote(fx.production.version)
    result = run(fx, fx.shadow(max_output_bytes=600))
    assert result.shadow is not None and result.shadow.outputs == []
    assert sample(fx.metrics, "tripwire_shadow_failures_total", reason="output") == (
        result.anomalies
    )
    assert sample(fx.metrics, "tripwire_shadow_alerts_total", agreement="both") == result.anomalies


def test_non_finite_shadow_scores_are_left_out_of_the_comparison(fx: Fixture) -> None:
    fx.promote(fx.production.version)

    def half_nan(root: str, ref: str) -> Scorer:
        scorer = load_scorer(root, ref)
        real = scorer.detector.score_and_explain

        def nan_first(X: np.ndarray) -> Any:
            scores, contrib = real(X)
            scores = np.array(scores, dtype=np.float64)
            scores[:10] = np.nan
            return scores, contrib

        scorer.detector.score_and_explain = nan_first  # type: ignore[method-assign]
        return scorer

    assert run(fx, fx.shadow(loader=half_nan)).outputs == run(fx, None).outputs
    assert sample(fx.metrics, "tripwire_shadow_failures_total", reason="non_finite") == 10
    assert sample(fx.metrics, "tripwire_shadow_events_scored_total") == 62


def test_throttled_logs_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warn = Throttled(60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for t in (0.0, 1.0, 2.0, 61.0):
            now[0] = t
            warn("scoring", "failed: %s", "x")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["failed: x", "failed: x (2 more since the last such line)"]


def test_shadow_settings_are_checked(tmp_path: Path) -> None:
    from tripwire.core.errors import ConfigError
    from tripwire.stream.settings import WorkerSettings

    base = {"bootstrap": "k:9092", "model_ref": "demo"}
    ok = WorkerSettings(**base, shadow_model="demo@candidate", shadow_topic="shadow")
    ok.validate()
    assert (ok.shadow_name, ok.shadow_alias) == ("demo", "candidate")
    for bad in (
        {"shadow_topic": "shadow"},
        {"shadow_model": "demo@3"},
        {"shadow_model": "@candidate"},
        {"shadow_model": "demo@candidate", "shadow_topic": "anomalies"},
    ):
        with pytest.raises(ConfigError):
            WorkerSettings(**base, **bad).validate()  # type: ignore[arg-type]
