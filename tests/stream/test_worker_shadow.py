"""Shadow scoring in real workers: real broker, real registry, real subprocesses.

Two workers read the same input topic in two groups, one with a shadow and one
without; production's outputs (alerts, scores, dead letters) and committed offsets
must be the same, the agreement counters exact, the shadow topic's records those of
the shadow's alerts. The shadow alias then moves (hot reload) and breaks
(incompatible, then corrupt): production never notices.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.registry import (
    Published,
    anomalous_rows,
    corrupt_weights,
    normal_rows,
    point_alias,
    publish_model,
)
from tests.stream.harness import (
    Out,
    WorkerProcess,
    committed,
    consume,
    f32_event,
    log_ends,
    produce,
    topics_for,
    wait_for,
    worker_settings,
)
from tests.stream.outputs import check_alert
from tripwire.core.registry import load_scorer
from tripwire.core.registry.evidence import evidence_problems
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.processing.shadow import SHADOW_HEADER
from tripwire.stream.wire.alerts import alert_id
from tripwire.training.registry import Registry

pytestmark = pytest.mark.integration

PARTITIONS = 2
#: Group id prefixes (``worker_settings`` gives ``g-<input topic>``).
GROUP = {"plain": "g-", "shadowed": "gs-"}
#: Fields of an output that name the worker or the moment (not what was decided).
PER_WORKER = ("time", "source", "detection_time")


@dataclass
class Pair:
    """Two workers on one input topic: ``plain`` and ``shadowed``."""

    broker: EmbeddedBroker
    production: Published
    low: Published  # production's detector with half its threshold
    topics: dict[str, dict[str, str]]
    workers: dict[str, WorkerProcess]
    placed: list[tuple[int, int]]

    def send(self, records: list[Out]) -> None:
        self.placed += produce(self.broker.bootstrap, self.topics["plain"]["features"], records)

    def metric(self, name: str) -> float:
        return self.workers["shadowed"].metric(name)

    def agreement(self) -> dict[str, float]:
        m = self.workers["shadowed"].metrics()
        return {a: m.get(f'tripwire_shadow_alerts_total{{agreement="{a}"}}', 0.0)
                for a in ("production_only", "shadow_only", "both")}  # fmt: skip

    def wait_scored(self, n: int) -> None:
        for name, w in self.workers.items():
            wait_for(lambda w=w: w.metric("tripwire_events_scored_total") >= n, 90,
                     f"{n} events scored by {name}")  # fmt: skip
        wait_for(lambda: self.metric("tripwire_shadow_events_scored_total") >= n, 30, "shadow")


def events(tag: str, seed: int) -> tuple[list[Out], np.ndarray]:
    X = np.vstack([normal_rows(150, seed=seed), anomalous_rows(30, seed=seed + 1)])
    X = X[np.random.default_rng(seed).permutation(len(X))]
    out = [f32_event(f"{tag}{i}", x, f"k{i % 5}") for i, x in enumerate(X)]
    out.append(Out(b"{not json", key=b"bad"))  # a dead letter in both runs
    return out, X


@pytest.fixture(scope="module")
def pair(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("shadow")
    production = publish_model(tmp / "registry")
    low = publish_model(tmp / "registry", threshold=production.threshold * 0.5, promote="candidate")
    plain = topics_for(broker, "plain", PARTITIONS)
    shadowed = {k: f"{v}-s" for k, v in plain.items()}
    shadowed["features"] = plain["features"]
    shadowed["shadow"] = f"shadow-{time.monotonic_ns()}"
    topics = {"plain": plain, "shadowed": shadowed}
    common: dict[str, Any] = {"reload_interval": 0.3, "max_wait": 0.05}
    with_shadow = worker_settings(broker, production, shadowed) | common | {
        "group_id": GROUP["shadowed"] + plain["features"],
        "shadow_model": "demo@candidate", "shadow_topic": shadowed["shadow"],
    }  # fmt: skip
    workers = {
        "plain": WorkerProcess(tmp / "plain.log", **worker_settings(broker, production, plain),
                               **common),
        "shadowed": WorkerProcess(tmp / "shadowed.log", **with_shadow),
    }  # fmt: skip
    try:
        for name, w in workers.items():
            wait_for(lambda w=w: w.metric("tripwire_ready") == 1, 120, f"{name} ready")
        yield Pair(broker, production, low, topics, workers, [])
    finally:
        codes = {name: w.stop() for name, w in workers.items()}
        assert codes == {"plain": 0, "shadowed": 0}, workers["shadowed"].log()[-3000:]


def decided(records: list[Any]) -> list[tuple[Any, ...]]:
    """The records as what was decided: key, headers and value minus per-worker fields."""
    out = []
    for r in records:
        doc = r.value if r.topic.startswith("dlq") else json.loads(r.value)
        if isinstance(doc, dict):
            for k in PER_WORKER:
                doc.pop(k, None)
                if isinstance(doc.get("data"), dict):
                    doc["data"].pop(k, None)
            doc = json.dumps(doc, sort_keys=True)
        out.append((r.partition, r.key, tuple(r.headers), doc))
    return sorted(out, key=repr)


def expected_agreement(pair: Pair, X: np.ndarray, shadow: Published) -> dict[str, int]:
    p = load_scorer(pair.production.root, "demo@1").score(X).is_anomaly
    s = load_scorer(shadow.root, f"demo@{shadow.version}").score(X).is_anomaly
    return {"production_only": int((p & ~s).sum()), "shadow_only": int((~p & s).sum()),
            "both": int((p & s).sum())}  # fmt: skip


def test_production_is_the_same_with_a_shadow_and_the_counts_are_exact(pair: Pair) -> None:
    records, X = events("a", seed=20)
    pair.send(records)
    pair.wait_scored(len(X))
    want = expected_agreement(pair, X, pair.low)
    assert want["shadow_only"] > 0 and want["both"] > 0 and want["production_only"] == 0
    assert pair.agreement() == want
    assert pair.metric('tripwire_shadow_model_info{name="demo",version="2"}') == 1
    bootstrap = pair.broker.bootstrap
    for kind in ("alerts", "scores", "dlq"):
        plain = consume(bootstrap, pair.topics["plain"][kind])
        shadowed = consume(bootstrap, pair.topics["shadowed"][kind])
        assert plain and decided(shadowed) == decided(plain), kind
    ends = log_ends(pair.placed, PARTITIONS)
    for name, topics in pair.topics.items():
        group = GROUP[name] + topics["features"]
        wait_for(lambda group=group: committed(bootstrap, group, topics["features"], PARTITIONS)
                 == ends, 30, f"{name}'s commits")  # fmt: skip
    # the shadow topic: the shadow's alerts, marked, valid, never the production ids
    n = want["shadow_only"] + want["both"]
    shadow = consume(bootstrap, pair.topics["shadowed"]["shadow"], lambda rs: len(rs) >= n)
    assert len(shadow) == n
    for r in shadow:
        doc = check_alert(r)
        assert (SHADOW_HEADER, b"1") in [(k, bytes(v)) for k, v in r.headers]
        assert doc["source"].endswith("/shadow") and doc["data"]["model"]["version"] == "2"
        assert doc["id"] == alert_id(doc["data"]["input_id"], "demo", "2")
    wait_for(lambda: pair.metric("tripwire_shadow_records_produced_total") == n, 30, "acks")


def tripwire(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real ``tripwire`` command (no ``TRIPWIRE_*`` from the test's environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    return subprocess.run([sys.executable, "-m", "tripwire", *argv], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_shadow_counters_are_evidence_the_gate_reads(pair: Pair, tmp_path: Path) -> None:
    """Runs after the first test: the workers' versions have not changed since they started."""
    url = f"http://127.0.0.1:{pair.workers['shadowed'].metrics_port}/metrics"
    out = tmp_path / "shadow.json"
    done = tripwire("shadow", "report", "--metrics-url", url, "--registry",
                    str(pair.production.root), "--input-topic",
                    pair.topics["shadowed"]["features"], "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert evidence_problems(doc) == [] and doc["source"] == "shadow"
    (c,) = doc["comparisons"]
    counts = pair.agreement()
    assert (c["baseline"], c["candidate"]) == ("demo@1", "demo@2")
    assert (c["only_baseline"], c["only_candidate"], c["both"]) == (
        counts["production_only"], counts["shadow_only"], counts["both"])  # fmt: skip
    events = pair.metric("tripwire_shadow_events_scored_total")
    assert doc["models"]["demo@2"]["events"] == events > 0
    assert doc["input"]["partitions"] == list(range(PARTITIONS))
    assert f"{int(events)} events compared" in done.stderr
    # the gate, on a copy of the registry (the workers follow the original)
    copy = tmp_path / "registry"
    shutil.copytree(pair.production.root, copy)
    tight = tripwire("registry", "promote", "demo", "2", "--registry", str(copy),
                     "--evidence", str(out), "--max-alert-rate-change", "10%")  # fmt: skip
    assert tight.returncode == 1 and "refusing to promote demo@2" in tight.stderr, tight.stderr
    loose = tripwire("registry", "promote", "demo", "2", "--registry", str(copy),
                     "--evidence", str(out), "--max-alert-rate-change", "1000%",
                     "--min-events", "100")  # fmt: skip
    assert loose.returncode == 0, loose.stderr
    shown = tripwire("registry", "show", "demo@production", "--registry", str(copy), "--history")
    assert "promote 1 -> 2" in shown.stdout, shown.stdout


def test_the_shadow_alias_hot_reloads_and_a_broken_shadow_changes_nothing(
    pair: Pair, tmp_path: Path
) -> None:
    before = pair.agreement()
    scored = pair.metric("tripwire_events_scored_total")
    reg = Registry(pair.production.root)
    reg.promote("demo", "candidate", "1")  # the shadow becomes production's own version
    wait_for(lambda: pair.metric('tripwire_shadow_model_info{name="demo",version="1"}'), 30,
             "the shadow to reload")  # fmt: skip
    assert pair.metric("tripwire_shadow_reloads_total") == 1
    records, X = events("b", seed=30)
    pair.send(records)
    pair.wait_scored(int(scored) + len(X))
    after = pair.agreement()
    prod = int(load_scorer(pair.production.root, "demo@1").score(X).is_anomaly.sum())
    assert after["both"] - before["both"] == prod
    assert after["shadow_only"] == before["shadow_only"]
    assert after["production_only"] == before["production_only"]
    # incompatible, then corrupt: refused and counted; production scores on
    publish_model(pair.production.root, n_features=6, promote="candidate")
    wait_for(lambda: pair.metric('tripwire_shadow_failures_total{reason="incompatible"}'), 30,
             "the incompatible shadow refused")  # fmt: skip
    broken = publish_model(pair.production.root, seed=2, promote=None)
    corrupt_weights(broken)
    point_alias(broken, broken.version, "candidate")  # promote would refuse it
    wait_for(lambda: pair.metric('tripwire_shadow_failures_total{reason="load"}'), 30,
             "the broken shadow refused")  # fmt: skip
    scored = pair.metric("tripwire_events_scored_total")
    records, X = events("c", seed=40)
    pair.send(records)
    pair.wait_scored(int(scored) + len(X))
    assert pair.metric('tripwire_shadow_model_info{name="demo",version="1"}') == 1  # kept
    plain = consume(pair.broker.bootstrap, pair.topics["plain"]["alerts"])
    shadowed = consume(pair.broker.bootstrap, pair.topics["shadowed"]["alerts"])
    assert decided(shadowed) == decided(plain)
    assert pair.metric('tripwire_model_reloads_total{result="failure"}') == 0
    log = pair.workers["shadowed"].log()
    assert "shadow model refused" in log and "production unaffected" in log
