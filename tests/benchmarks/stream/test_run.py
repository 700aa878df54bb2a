"""The stream benchmark on the real broker: ceiling A, the latency probe, a whole tiny run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchmarks.stream import report as stream_report
from benchmarks.stream.ceilings import raw_aiokafka
from benchmarks.stream.probe import run_probe
from benchmarks.stream.run import HarnessSettings, run_harness
from tripwire.bench.stream_data import Rows, produce_all, records_for
from tripwire.bench.stream_worker import offer
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.wire.codecs import Codec

pytestmark = pytest.mark.integration

D = 50
CODEC = Codec([f"f{i}" for i in range(D)], 1_000_000)


def rows() -> Rows:
    rng = np.random.default_rng(0)
    normal = rng.normal(5.0, 1.0, size=(40, D)).astype(np.float32)
    return Rows(normal, rng.uniform(-5, 5, size=(10, D)).astype(np.float32), normal)


@pytest.mark.parametrize(("encoding", "vectors"), [("binary", 300), ("packed", 1000)])
def test_ceiling_a_reads_and_decodes_every_record(
    broker: EmbeddedBroker, topic_factory: Callable[..., str], encoding: str, vectors: int
) -> None:
    topic = topic_factory("raw", partitions=3)
    records = records_for(encoding, rows(), vectors, 0.1, packed=100)
    asyncio.run(produce_all(broker.bootstrap, topic, records))
    rate = asyncio.run(raw_aiokafka(broker.bootstrap, topic, len(records), CODEC, timeout=60))
    assert rate.records == len(records) and rate.vectors == vectors
    assert rate.records_per_s > 0 and rate.cpu_seconds >= 0


def test_the_probe_times_every_offered_record(
    broker: EmbeddedBroker, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory("probe", partitions=2)
    sent: list[int] = []

    def send() -> None:
        offered = asyncio.run(offer(broker.bootstrap, topic, rows(), 200, 0.5, 0.1, "p-"))
        sent.append(offered.sent)

    latencies = run_probe(broker.bootstrap, topic, 100, tmp_path, send, fetch_max_wait_ms=10)
    assert sent == [100] and len(latencies) == 100
    assert 0 <= min(latencies) and max(latencies) < 10_000


@pytest.mark.slow
def test_a_tiny_run_measures_everything(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = HarnessSettings(
        bootstrap=broker.bootstrap, out=str(tmp_path / "out"), events=40_000,
        packed_events=500_000, packed_size=50, bare_events=500, naive_events=50,
        rates=("500", "50%"), rate_seconds=1.0, profile=False, detectors=("ae",),
        detector_rate=500.0, variants=("drift-off", "default"), variant_repeats=1,
        variant_rate=500.0,
    )  # fmt: skip
    result = run_harness(settings, command="test")
    assert set(result.ceiling_a) == set(result.worker) == {"json", "binary", "packed"}
    assert result.worker["binary"]["vectors"] > 0 and result.ceiling_b["events"] == 499
    assert result.naive["events_per_s"] > 0 and result.ceiling_c["vectors_per_s"] > 0
    assert [round(x["offered"]) for x in result.latency][0] == 500
    assert all(x["alerts"] > 0 and x["p99"] is not None for x in result.latency)
    assert result.memory["peak_rss"] >= result.memory["rss_end"] > 0
    md, js = stream_report.write(result, tmp_path / "out")
    assert result.detectors[0]["worker"]["vectors_per_s"] > 0
    text = md.read_text()
    assert "Tripwire worker" in text and js.exists()
    assert "### Speed targets of a default detector" in text and "\n| ae | " in text
    assert [v["variant"] for v in result.variants] == ["drift-off", "default"]
    assert all(v["measured"] == 1 for v in result.variants), result.variants
    (drift,) = result.comparisons  # no shadow variant: no shadow comparison
    assert drift["ratio"] > 0 and "| drift-off | `--no-drift` |" in text
