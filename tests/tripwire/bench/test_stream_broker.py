"""``tripwire bench stream`` on the real broker: the worker-only run, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tripwire.bench import stream_report
from tripwire.bench.stream import StreamResult, WorkerBench, run_stream
from tripwire.bench.stream_data import demo_rows, train_model
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration


def test_help_offers_the_worker_options_only() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tripwire", "bench", "stream", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    assert "--packed-events" in out and "--rates" in out
    assert "--detectors LIST" in out and "--detectors-only" in out and "--detector-rate" in out
    assert "--variants LIST" in out and "--variant-repeats" in out and "--variant-rate" in out
    assert "--naive-events" not in out and "--update-doc" not in out and "--profile" not in out


@pytest.mark.slow
def test_a_tiny_run_measures_the_worker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = StreamBenchSettings(
        bootstrap=broker.bootstrap, out=str(tmp_path / "out"), events=40_000,
        packed_events=500_000, packed_size=50, rates=("500",), rate_seconds=1.0,
        detectors=("ae",), detector_rate=500.0, variant_repeats=1, variant_rate=500.0,
    )  # fmt: skip
    result = run_stream(settings, command="test")
    assert set(result.worker) == {"json", "binary", "packed"}
    assert all(w["vectors_per_s"] > 0 for w in result.worker.values())
    assert [round(x["offered"]) for x in result.latency] == [500]
    assert result.latency[0]["alerts"] > 0 and result.latency[0]["p99"] is not None
    assert result.memory["peak_rss"] >= result.memory["rss_end"] > 0
    (ae,) = result.detectors  # the run's own AE, served by a worker of its own
    assert ae["train_seconds"] is None and ae["model"] == "bench@production", ae
    assert ae["worker"]["vectors_per_s"] > 0 and ae["latency"]["alerts"] > 0
    assert [v["variant"] for v in result.variants] == ["default", "drift-off", "shadow"]
    assert all(v["measured"] == 1 and v["vectors_per_s"] > 0 for v in result.variants)
    assert [c["on"] for c in result.comparisons] == ["default", "shadow"]
    assert all(c["ratio"] > 0 for c in result.comparisons)
    md, js = stream_report.write(result, tmp_path / "out")
    text = md.read_text()
    assert "| packed |" in text and js.exists()
    assert "### Worker variants" in text and "| drift monitoring on ÷ off (issue 16)" in text


@pytest.mark.slow
def test_a_tiny_detectors_only_run_measures_each_detector(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    # Quick to train (the AE takes minutes on a busy host); one spec that cannot be trained.
    specs = ("knn", "vae", "pyod:IForest", "nope")
    settings = StreamBenchSettings(
        bootstrap=broker.bootstrap, out=str(tmp_path / "out"), events=20_000, detectors=specs,
        detectors_only=True, detector_seconds=4.0, detector_rate=500.0, rate_seconds=1.0,
    )  # fmt: skip
    result = run_stream(settings, command="test")
    assert result.worker == {} and result.latency == [] and result.memory == {}
    assert [d["detector"] for d in result.detectors] == list(specs)
    *measured, failed = result.detectors
    for d in measured:
        assert "error" not in d, d
        assert d["inprocess"]["vectors_per_s"] > 0 and d["inprocess"]["batch"] == 256
        assert d["worker"]["vectors_per_s"] > 0 and 0 < d["events"] <= 20_000
        lat = d["latency"]
        assert lat["events"] == 500 and lat["alerts"] > 0 and lat["p99"] is not None
    assert "unknown detector 'nope'" in failed["error"]
    md = stream_report.write(result, tmp_path / "out")[0].read_text()
    assert "### Throughput" not in md
    for spec in specs:
        assert f"\n| {spec} | " in md


@pytest.mark.slow
def test_each_variant_s_flags_reach_its_worker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = StreamBenchSettings(
        bootstrap=broker.bootstrap, out=str(tmp_path / "out"), events=20_000, variant_repeats=2,
        variant_rate=500.0, rate_seconds=1.0,
    )  # fmt: skip
    result = StreamResult(meta={})
    with WorkerBench.started(settings, result) as bench:
        bench.rows = demo_rows(0)  # what prepare() makes, with a quicker model
        bench.model_ref = train_model(bench.work / "registry", 0, epochs=1)
        bench.variants()
    rows = {v["variant"]: v for v in result.variants}
    assert list(rows) == ["default", "drift-off", "shadow"]
    ran = sorted((x["position"], name) for name, v in rows.items() for x in v["rounds"])
    assert [name for _, name in ran] == ["default", "drift-off", "shadow"] + [
        "shadow", "drift-off", "default"
    ]  # fmt: skip
    for v in rows.values():
        assert "error" not in v and v["measured"] == 2, v
        assert v["vectors_per_s"] > 0 and v["p99"] is not None
    # Each worker's own metrics show its flags: drift on by default, off with
    # --no-drift, the shadow scoring every event with --shadow-model.
    for x in rows["default"]["rounds"]:
        e = x["evidence"]
        assert e["tripwire_drift_monitoring"] == 1 and e["tripwire_drift_evaluations_total"] > 0
        assert e["tripwire_shadow_events_scored_total"] == 0
    for x in rows["drift-off"]["rounds"]:
        e = x["evidence"]
        assert e["tripwire_drift_monitoring"] == 0 and e["tripwire_drift_evaluations_total"] == 0
    for x in rows["shadow"]["rounds"]:
        assert x["evidence"]["tripwire_shadow_events_scored_total"] >= 20_000
        assert x["evidence"]["tripwire_drift_monitoring"] == 1
    drift, shadow = result.comparisons
    assert (drift["on"], drift["off"], shadow["on"], shadow["off"]) == (
        "default", "drift-off", "shadow", "default"
    )  # fmt: skip
    assert len(drift["round_ratios"]) == len(shadow["round_ratios"]) == 2
    assert drift["holds"] is not None and shadow["p99"] == rows["shadow"]["p99"]
