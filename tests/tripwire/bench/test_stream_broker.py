"""``tripwire bench stream`` on the real broker: the worker-only run, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tripwire.bench import stream_report
from tripwire.bench.stream import StreamBenchSettings, run_stream
from tripwire.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration


def test_help_offers_the_worker_options_only() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tripwire", "bench", "stream", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    assert "--packed-events" in out and "--rates" in out
    assert "--detectors LIST" in out and "--detectors-only" in out and "--detector-rate" in out
    assert "--naive-events" not in out and "--update-doc" not in out and "--profile" not in out


@pytest.mark.slow
def test_a_tiny_run_measures_the_worker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = StreamBenchSettings(
        bootstrap=broker.bootstrap, out=str(tmp_path / "out"), events=40_000,
        packed_events=500_000, packed_size=50, rates=("500",), rate_seconds=1.0,
        detectors=("ae",), detector_rate=500.0,
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
    md, js = stream_report.write(result, tmp_path / "out")
    assert "| packed |" in md.read_text() and js.exists()


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
