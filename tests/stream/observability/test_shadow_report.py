"""``tripwire shadow report`` on real metrics registries and a real model registry.

The scraped text is what a worker's ``Metrics`` exposes (``generate_latest``), fed
by the real ``Shadow.record``; a report must be valid evidence with exact counts,
and refused when its versions changed within what it covers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.fixtures.registry import Published
from tripwire.core.registry.evidence import evidence_problems
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.observability.shadow_report import (
    Samples,
    ShadowReportError,
    bucket_quantile,
    collect,
    parse,
)
from tripwire.stream.processing.shadow import Shadow, ShadowBatch, ShadowWatcher
from tripwire.stream.wire.alerts import AlertBuilder


class FakeWorker:
    """A worker's metrics: real ``Metrics``, figures added by the real ``Shadow.record``."""

    def __init__(self, pub: Published, shadow_version: str, threshold: float = 1.0) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.metrics.set_model("demo", "1", threshold)
        self.metrics.shadow.set_model("demo", shadow_version, threshold / 2)
        self.metrics.consumer_lag.labels(partition="0").set(0)
        self.metrics.consumer_lag.labels(partition="2").set(3)
        watcher = ShadowWatcher(str(pub.root), "demo", "candidate", self.metrics.shadow,
                                lambda: None)  # type: ignore[arg-type,return-value]  # fmt: skip
        self.shadow = Shadow(watcher, self.metrics.shadow, AlertBuilder("tripwire://g/t/shadow"),
                             None, top_k=0, max_output_bytes=1 << 20)  # fmt: skip
        self.pair = ("demo@1", f"demo@{shadow_version}")

    def batch(self, production_only: int, shadow_only: int, both: int, quiet: int) -> None:
        n = production_only + shadow_only + both + quiet
        ratios = np.linspace(0.2, 3.0, n)
        self.shadow.record(ShadowBatch(
            self.pair, n, production_only, shadow_only, both,
            ratios={"production": ratios, "shadow": ratios * 2},
        ))  # fmt: skip

    def text(self) -> Samples:
        return parse(generate_latest(self.metrics.registry).decode())


@pytest.fixture
def pubs(registry_factory: Callable[..., Published]) -> Published:
    first = registry_factory()
    registry_factory(root=first.root, seed=1, promote="candidate")
    return first


def test_one_scrape_is_exact_and_valid_evidence(pubs: Published) -> None:
    a, b = FakeWorker(pubs, "2"), FakeWorker(pubs, "2")
    a.batch(3, 5, 7, 85)
    b.batch(1, 0, 2, 97)
    texts = {"http://a/metrics": a.text(), "http://b/metrics": b.text()}
    doc = collect(list(texts), str(pubs.root), "features", scrape=texts.__getitem__)
    assert evidence_problems(doc) == []
    (c,) = doc["comparisons"]
    assert (c["baseline"], c["candidate"]) == ("demo@1", "demo@2")
    assert (c["only_baseline"], c["only_candidate"], c["both"]) == (4, 5, 9)
    base, cand = doc["models"]["demo@1"], doc["models"]["demo@2"]
    assert (base["events"], base["alerts"], cand["alerts"]) == (200, 13, 14)
    assert base["threshold"] == 1.0 and cand["threshold"] == 0.5
    assert doc["input"] == {"topic": "features", "partitions": [0, 2],
                            "from": doc["input"]["from"], "to": doc["input"]["to"]}  # fmt: skip
    q = base["score_quantiles"]
    assert 0 < q["p50"] <= q["p90"] <= q["p99"] <= q["p999"] <= 3.0


def test_a_window_counts_only_what_happened_in_it(pubs: Published) -> None:
    w = FakeWorker(pubs, "2")
    w.batch(50, 50, 50, 50)  # before the window
    scrapes = iter([w.text()])
    later: list[Samples] = []

    def scrape(url: str) -> Samples:
        return next(scrapes, None) or later[0]

    def sleep(seconds: float) -> None:
        assert seconds == 30
        w.batch(2, 1, 4, 93)
        later.append(w.text())

    doc = collect(["http://w/metrics"], str(pubs.root), "t", 30, scrape=scrape, sleep=sleep)
    (c,) = doc["comparisons"]
    assert (c["only_baseline"], c["only_candidate"], c["both"]) == (2, 1, 4)
    assert doc["models"]["demo@1"]["events"] == 100


def test_versions_that_changed_are_refused(pubs: Published) -> None:
    w = FakeWorker(pubs, "2")
    w.batch(1, 1, 1, 97)
    w.metrics.shadow.reloads.inc()
    with pytest.raises(ShadowReportError, match="changed since it started"):
        collect(["u"], str(pubs.root), "t", scrape=lambda u: w.text())
    a, b = FakeWorker(pubs, "2"), FakeWorker(pubs, "1")
    a.batch(1, 1, 1, 97)
    b.batch(1, 1, 1, 97)
    texts = {"a": a.text(), "b": b.text()}
    with pytest.raises(ShadowReportError, match="different versions"):
        collect(["a", "b"], str(pubs.root), "t", scrape=texts.__getitem__)


def test_no_shadow_or_an_unknown_version_is_refused(pubs: Published) -> None:
    w = FakeWorker(pubs, "7")  # not in the registry
    w.batch(1, 1, 1, 97)
    with pytest.raises(ShadowReportError, match="demo@7"):
        collect(["u"], str(pubs.root), "t", scrape=lambda u: w.text())
    w.metrics.shadow.model_info.clear()
    with pytest.raises(ShadowReportError, match="no shadow version"):
        collect(["u"], str(pubs.root), "t", scrape=lambda u: w.text())


def test_bucket_quantiles_follow_histogram_quantile() -> None:
    buckets = {0.5: 10.0, 1.0: 30.0, 2.0: 40.0, math.inf: 50.0}
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.25)  # first bucket from 0
    assert bucket_quantile(0.4, buckets) == pytest.approx(0.75)
    assert bucket_quantile(0.99, buckets) == 2.0  # in +Inf: the last finite bound
    assert bucket_quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None
    qs = [bucket_quantile(q, buckets) for q in np.linspace(0.01, 0.999, 50)]
    assert qs == sorted(qs)
